# Mask R-CNN RegNetX-3.2GF FPN with multi-scale training and a 3x schedule.
# mmdet's mask-rcnn_regnetx-3.2GF_fpn_ms-3x_coco.py (43.1 box / 38.7 mask AP): shorter side drawn
# from 640-800, 36 epochs, LR steps at 28 and 34, gradient clipping at 35.
_base_ = './mask_rcnn_regnetx_3.2gf_fpn.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[28, 34],
         gamma=0.1),
]
