# Mask R-CNN + FPN with RegNetX-4.0GF trained FROM SCRATCH on COCO: detectron2's "new baselines"
# recipe (configs/new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_100ep_LSJ.py), built on mmdet's
# own LSJ base (mmdet::common/lsj-100e_coco-instance.py), as mmdet's configs/strong_baselines do
# for ResNet-50. The base to use for detection design-space studies from scratch
# (`tools/study.py setup THIS_CONFIG ...`; it trains everything as written, so no --init).
#
# detectron2 reports, for 100 epochs of this recipe on COCO val2017 (box / mask AP):
#   RegNetX-4GF 46.0 / 41.3, RegNetY-4GF 46.1 / 41.6, R50 44.6 / 40.3
# (400 epochs: 48.6 / 43.5, 48.2 / 43.3, 47.4 / 42.5). These are detectron2's numbers, not
# reproduced with this config.
#
# The recipe, as detectron2 and mmdet's LSJ base write it:
# * no pretrained weights (no init_cfg), nothing frozen, BN statistics trained;
# * SyncBN in the backbone, the FPN, the 4-conv + 1-fc box head and the mask head, 2 convs in
#   the RPN head. detectron2 (NaiveSyncBatchNorm) and mmdet (MMSyncBN) use their own synchronised
#   BN in the heads because torch's once failed on the empty RoI batches a GPU can get
#   (pytorch#36530); torch's SyncBatchNorm handles them now, weighting each GPU by its count
#   like detectron2's stats_mode="N", and it builds without a process group, so one SyncBN
#   serves all (mmengine reverts it to BN when a run is not distributed);
# * large-scale jitter: resize to 0.1-2.0 x 1024, crop 1024x1024, flip; test at 1333x800;
# * batch 64 (mmdet's base: 2 images on each of 32 GPUs; e.g. 8 GPUs x 8 images gives the
#   same), SGD momentum 0.9, lr 0.1, weight decay 4e-5 and none on norms (detectron2's
#   weight_decay_norm=0), 500 warm-up iterations from 0.067x, lr / 10 at 88% and 96% of training;
# * 100 epochs: 25 epochs of COCO repeated 4 times (mmdet's RepeatDataset; detectron2 counts
#   184375 iterations of 64 images); mixed precision (AmpOptimWrapper).
# One difference on purpose, as in every config here: RGB input with ImageNet statistics
# (detectron2's RegNet configs feed BGR with pycls's statistics); from scratch it only fixes the
# convention of the weights this recipe produces.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)

arch = 'regnetx_4.0gf'
image_size = (1024, 1024)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
        pad_size_divisor=32,  # needed at test time; training batches are padded to 1024
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='RegNetBackbone',
        in_channel_order='RGB',
        arch=arch,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=None),  # from scratch: no pretrained weights
    neck=dict(in_channels=[80, 240, 560, 1360], norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256,
                       norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

optim_wrapper = dict(type='AmpOptimWrapper', paramwise_cfg=dict(norm_decay_mult=0.0))
env_cfg = dict(cudnn_benchmark=True)  # as detectron2's RegNet configs
