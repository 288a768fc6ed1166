# The recipe of `make study` (`python tools/study.py demo`): every trial of the CPU design-space
# study (RegNetX vs AnyNetX_A, 100-200 MF at 224x224) trains this classifier from scratch on the
# real Fashion-MNIST (Debian's dataset-fashion-mnist, unpacked by
# regnet_backbone.demo.fashion_mnist into data/fashion_mnist), one thread per trial, two at a time.
# tools/study.py setup replaces model.backbone.arch and the head's in_channels per trial.
#
# What differs from the ImageNet recipe (../../regnetx_400mf_8xb128_in1k.py), and why:
# * greyscale 28x28 images, zero-padded at the bottom and right to 32x32 (after the flip, so that
#   training and test images are padded alike), one input channel;
# * strides (1, 2, 2, 2): the stem's stride 2 and three stride-2 stages take 32x32 to a 2x2 map
#   before the global average pooling (ImageNet's four stride-2 stages would leave 1x1);
# * a short schedule, as in the paper's 10-epoch protocol, that ranks models by how fast they
#   learn: 400 SGD steps of 64 images (about 0.43 epochs), Nesterov momentum 0.9, lr 0.1, linear
#   warm-up from 0.1x over the first 5% (20 steps), then cosine to 0, weight decay 5e-5,
#   random horizontal flips. One validation at the end, on the first 2000 test images;
# * channels_last memory format (the same results; 15-40% faster steps on one CPU thread here);
# * no dataloader workers (the two cores are the trials'), so no serialised copy of the images
#   for them to share (serialize_data=False saves 1.7 s of each trial's start-up), and no
#   intermediate checkpoints.
# The error of a study's EDF is 100 - top-1 accuracy. Every trial trains with seed 0; the reruns
# of `--repeats` with seed 1 (tools/study.py setup writes randomness.seed per trial).
_base_ = '../../regnetx_400mf_8xb128_in1k.py'

arch = 'regnetx_200mf'
num_classes = 10
max_iters = 400
warmup_iters = 20  # 5% of max_iters
batch_size = 64
val_images = 2000
data_root = 'data/fashion_mnist'

model = dict(
    # Fashion-MNIST's training set: mean 72.94, std 90.02 on the 0-255 scale.
    data_preprocessor=dict(num_classes=num_classes, mean=[72.94], std=[90.02], to_rgb=False),
    # Written out (_delete_): the base's colour order has no meaning for one grey channel.
    backbone=dict(_delete_=True, type='RegNetBackbone', arch=arch, in_channels=1,
                  strides=(1, 2, 2, 2), out_indices=(3, ),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  zero_init_residual=True, channels_last=True),
    head=dict(num_classes=num_classes, in_channels=368, topk=(1, )))

train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Pad', size=(32, 32), pad_val=dict(img=0)),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Pad', size=(32, 32), pad_val=dict(img=0)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='FashionMNIST', data_root=data_root, split='train',
                 test_mode=False, download=False, serialize_data=False, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=500, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='FashionMNIST', data_root=data_root, split='test',
                 test_mode=True, download=False, serialize_data=False, indices=val_images,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
auto_scale_lr = dict(base_batch_size=batch_size)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1, save_best=None))
log_processor = dict(by_epoch=False, window_size=50)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
