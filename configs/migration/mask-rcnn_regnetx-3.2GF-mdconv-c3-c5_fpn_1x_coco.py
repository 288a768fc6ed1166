# mmdet's Mask R-CNN RegNetX-3.2GF with modulated deformable convs in stages 2-4 (DCNv2),
# read from the installed mmdet, with one change: type='RegNet' -> type='RegNetBackbone'.
_base_ = 'mmdet::regnet/mask-rcnn_regnetx-3.2GF-mdconv-c3-c5_fpn_1x_coco.py'
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)
model = dict(backbone=dict(type='RegNetBackbone'))
