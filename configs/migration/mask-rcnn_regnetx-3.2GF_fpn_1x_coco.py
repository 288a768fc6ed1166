# mmdet's own Mask R-CNN RegNetX-3.2GF 1x config (40.3 box / 36.6 mask AP published by mmdet),
# read from the installed mmdet, with one change: type='RegNet' -> type='RegNetBackbone'.
# Everything else is mmdet's: BGR preprocessing with pycls's statistics, its open-mmlab://
# ImageNet weights (BGR, kept as they are: in_channel_order is not set) and its schedule.
# Evaluate mmdet's published detector with it, its file translated on the fly:
#   python tools/test.py configs/migration/mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py \
#       mask_rcnn_regnetx-3.2GF_fpn_1x_coco_20200520_163141-2a9d1814.pth
_base_ = 'mmdet::regnet/mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py'
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)
model = dict(backbone=dict(type='RegNetBackbone'))
