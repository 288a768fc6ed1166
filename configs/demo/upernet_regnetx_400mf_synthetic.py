# The segmentation demo (`python tools/demo.py --seg`, or `--seg-only`): UperNet with
# RegNetX-400MF, trained FROM SCRATCH on the synthetic shapes' label maps (background + 3 classes)
# and evaluated with mmseg's IoUMetric (mIoU) on the 200 validation images. About 16 minutes on
# 2 CPU cores (two 1-thread processes of 2 images each).
#
# Same data as the Mask R-CNN demo (mask_rcnn_regnetx_400mf_fpn_synthetic.py): `python
# tools/demo.py` writes it under data/synthetic/. Differences from the ADE20K base, and why:
# * GroupNorm in the backbone and the heads instead of SyncBN: from scratch with 2 images per
#   process, BN's running statistics lag the batch statistics, and evaluation (which uses the
#   running ones) fell far behind training. Measured on this data, 1200 iterations: BN backbone
#   0.29 mIoU (background IoU 0.78), GN backbone 0.56 (background 0.98);
# * 2400 iterations: telling a rectangle from a circle pixel by pixel is learned last (rectangle
#   IoU 0.19 at iteration 1200);
# * no pretrained weights, AdamW with warm-up and cosine decay (from scratch), 64-channel heads
#   (4 classes), and no resize or crop: images are generated at the training size.
_base_ = '../upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py'

data_root = 'data/synthetic/'
metainfo = dict(classes=('background', 'circle', 'rectangle', 'triangle'),
                palette=[(0, 0, 0), (220, 20, 60), (0, 128, 255), (60, 180, 75)])
max_iters = 2400
warmup_iters = 100
val_interval = 600
norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)  # 8 divides every RegNetX-400MF width

model = dict(
    data_preprocessor=dict(size=None, size_divisor=32),
    backbone=dict(arch='regnetx_400mf', norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(in_channels=[32, 64, 160, 384], channels=64, num_classes=4,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=160, channels=32, num_classes=4, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(_delete_=True, type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.jpg', seg_map_suffix='.png', pipeline=train_pipeline,
                 data_prefix=dict(img_path='train', seg_map_path='seg/train')))
val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(_delete_=True, type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.jpg', seg_map_suffix='.png', pipeline=test_pipeline,
                 data_prefix=dict(img_path='val', seg_map_path='seg/val')))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=200, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
