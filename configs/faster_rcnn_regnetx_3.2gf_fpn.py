# Faster R-CNN + FPN, 1x, COCO, RegNetX-3.2GF (mmdet reports 39.9 box AP with its BGR weights).
# Same backbone recipe and RGB input as mask_rcnn_regnetx_3.2gf_fpn.py.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
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
