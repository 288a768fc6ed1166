# Cascade Mask R-CNN + FPN, RegNetX-3.2GF, multi-scale 3x (mmdet publishes its RegNet cascade
# models only with this schedule: cascade-mask-rcnn_regnetx-3.2GF_fpn_ms-3x_coco.py).
_base_ = [
    'mmdet::common/ms_3x_coco-instance.py',
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
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
