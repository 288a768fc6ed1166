# UperNet + RegNetX-3.2GF on ADE20K, 512x512 crops, 160k iterations, 4 GPUs x 4 images.
# mmseg's upernet_r50_4xb4-160k_ade20k-512x512.py with the backbone swapped: SyncBN, nothing
# frozen, UPerHead on all four stages (pool scales 1, 2, 3, 6), auxiliary FCN head on stage 3.
# RGB input with ImageNet statistics, as the converted weights expect (mmseg's default too).
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)

arch = 'regnetx_3.2gf'
crop_size = (512, 512)
model = dict(
    pretrained=None,  # the base names ResNet-50 weights here; ours come through init_cfg
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
        size=crop_size),
    backbone=dict(
        _delete_=True,
        type='RegNetBackbone',
        in_channel_order='RGB',
        arch=arch,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=f'checkpoints/{arch}_rgb.pth')),
    decode_head=dict(in_channels=[96, 192, 432, 1008], pool_scales=(1, 2, 3, 6),
                     num_classes=150),
    auxiliary_head=dict(in_channels=432, in_index=2, num_classes=150))
