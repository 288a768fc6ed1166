# Mask R-CNN + FPN with RegNetY-4.0GF from scratch, LSJ, 100 epochs (recipe and detectron2's
# reported numbers: mask_rcnn_regnetx_4.0gf_fpn_lsj-100e_scratch.py). detectron2 reports 46.1 box /
# 41.6 mask AP for RegNetY-4GF with this recipe (new_baselines/
# mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ.py); not reproduced with this config.
_base_ = './mask_rcnn_regnetx_4.0gf_fpn_lsj-100e_scratch.py'

arch = 'regnety_4.0gf'
model = dict(backbone=dict(arch=arch), neck=dict(in_channels=[128, 192, 512, 1088]))
