# ImageNet-1k classification with a RegNetX-400MF backbone: pycls's published RegNet recipe on
# mmpretrain (8 GPUs x 128 images).
#
# pycls (dds_baselines): 100 epochs, SGD momentum 0.9 with Nesterov (as mmpretrain's RegNet
# configs), weight decay 5e-5, lr 0.8 for a batch of 1024 (scaled linearly with the batch:
# `--auto-scale-lr`), 5 linear warm-up epochs from 0.1x, then half-period cosine to 0;
# random-resized crop 224 + flip for training, resize 256 + centre crop 224 for testing.
# One difference from pycls and mmpretrain's own RegNet configs on purpose: the input is RGB with
# ImageNet statistics, the convention of every checkpoint tools/convert_pretrained.py writes, so a
# backbone pretrained here drops into the detection and segmentation configs unchanged.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)

arch = 'regnetx_400mf'
num_classes = 1000
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        num_classes=num_classes,
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(
        type='RegNetBackbone',
        in_channel_order='RGB',
        arch=arch,
        out_indices=(3, ),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        zero_init_residual=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=384,  # the last stage's width; the tools derive it from `arch`
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

dataset_type = 'ImageNet'
data_root = 'data/imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 100
warmup_epochs = 5
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.8, momentum=0.9, nesterov=True, weight_decay=5e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
