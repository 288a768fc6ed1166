# The `make demo` detector: Mask R-CNN + FPN with RegNetX-400MF, trained FROM SCRATCH on the
# synthetic shapes (regnet_backbone/synthetic.py) and evaluated with mmdet's CocoMetric (bbox and
# segm) on its 200 validation images. Sized for a 2-core CPU: tools/demo.py trains it in two
# 1-thread processes of 2 images each (about 13 minutes); `tools/train.py` runs it as written
# (4 images per process), `tools/dist_train.sh CONFIG 2` with 4 per process.
#
# Data: `python tools/demo.py` writes it (or `python tools/make_synthetic_data.py data/synthetic
# --num-train 2000 --num-val 200 --size 256`); tools/demo.py --data-root points it elsewhere.
#
# Why it differs from its base (mask_rcnn_regnetx_400mf_fpn.py, mmdet's ImageNet fine-tuning):
# * no pretrained weights, so BN learns and nothing is frozen; AdamW with warm-up, cosine decay
#   and gradient clipping, which train from scratch in ~1200 iterations where SGD does not;
# * GroupNorm in the FPN and in both RoI heads, and a 4-conv + 1-fc box head: trained from
#   scratch, heads without normalisation learn slowly ("Rethinking ImageNet Pre-training", He et
#   al. 2019). Measured here: with mmdet's plain 2-fc box head and no GN the same 1200 iterations
#   reached 0.26 bbox / 0.27 segm mAP; with GN heads 0.51 / 0.52 already at iteration 800.
#   In two 1-thread processes the extra convolutions cost almost nothing;
# * GroupNorm in the backbone too: with 2 images per process, BN's running statistics (used at
#   evaluation) lag the batch statistics. Same recipe, 1400 iterations: BN backbone 0.564 bbox /
#   0.574 segm mAP (0.21 / 0.23 at iteration 350), GN backbone 0.729 / 0.745 (0.31 / 0.36);
# * 64-channel FPN/RPN/RoI heads, a 256-wide fc and a 2-conv mask head: 3 classes of simple shapes
#   need little capacity, and the stock 256/1024/4-conv heads would cost most of a step;
# * RoIAlign sampling_ratio=2 instead of 0 (adaptive): mmcv's CPU RoIAlign with 0 took 44% of a
#   training step (with 0 the mAP after 400 iterations was within noise of 2);
# * fewer proposals and RoIs (at most 5 objects per image).
_base_ = '../mask_rcnn_regnetx_400mf_fpn.py'

data_root = 'data/synthetic/'
metainfo = dict(classes=('circle', 'rectangle', 'triangle'),
                palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)])
max_iters = 1400
warmup_iters = 100
val_interval = 350
channels = 64
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)  # 16 divides every width

model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None, norm_cfg=norm_cfg),
    neck=dict(out_channels=channels, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', in_channels=channels,
                       conv_out_channels=channels, fc_out_channels=256, norm_cfg=norm_cfg,
                       num_classes=3),
        mask_roi_extractor=dict(out_channels=channels, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_convs=2,
                       norm_cfg=norm_cfg, num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=200),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# The images are generated at the training size: Resize only records scale_factor (1.0), which
# the heads read.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/')))
val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(interval=20, log_metric_by_epoch=False),  # metrics logged by iteration
    checkpoint=dict(by_epoch=False, interval=200, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
auto_scale_lr = dict(base_batch_size=4)
