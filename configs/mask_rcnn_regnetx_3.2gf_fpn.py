# Mask R-CNN + FPN, 1x schedule, COCO, with a RegNetX-3.2GF backbone.
#
# mmdet's published RegNet recipe (mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py, 40.3 box / 36.6 mask AP):
# SGD lr 0.02, momentum 0.9, weight decay 5e-5, stem and stage 1 frozen, BN statistics frozen.
# One difference on purpose: weights converted by tools/convert_pretrained.py expect RGB input
# with ImageNet statistics, where mmdet's RegNet configs feed BGR with pycls statistics.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)

arch = 'regnetx_3.2gf'
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='RegNetBackbone',
        in_channel_order='RGB',
        arch=arch,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=f'checkpoints/{arch}_rgb.pth')),
    neck=dict(in_channels=[96, 192, 432, 1008]))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.00005))
