# A CPU-sized classification run: RegNetX-200MF learns the synthetic shapes-and-counts set
# (`regnet_backbone.demo.classification`: 6 classes, 64x64, 3000 train / 300 val images) in about
# 5.5 minutes on 2 cores. Measured: held-out top-1 38.7% at best (37.3% at the end) against 16.7%
# for chance, while the training loss fell from 1.79 to 1.0: it overfits 3000 images (8 epochs at
# lr 2e-3 gave 31.7%). It shows the classification path end to end, not a strong classifier. Generate the data with
#     python tools/make_synthetic_data.py data/synthetic_cls --task classification
# then `python tools/train.py configs/demo/regnetx_200mf_synthetic_cls.py`.
# From scratch, so AdamW with a short warm-up and cosine decay instead of pycls's SGD recipe
# (which assumes 100 ImageNet epochs); BN is fine with 32 images per batch.
_base_ = '../regnetx_400mf_8xb128_in1k.py'

arch = 'regnetx_200mf'
num_classes = 6
model = dict(
    data_preprocessor=dict(num_classes=num_classes),
    backbone=dict(arch=arch),
    head=dict(num_classes=num_classes, in_channels=368, topk=(1, )))

data_root = 'data/synthetic_cls'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=True,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=True,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 16
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=2, max_keep_ckpts=1, save_best='auto'))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
