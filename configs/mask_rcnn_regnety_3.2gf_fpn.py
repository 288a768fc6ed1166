# Mask R-CNN + FPN 1x with regnety_3.2gf (recipe: mask_rcnn_regnetx_3.2gf_fpn.py).
_base_ = './mask_rcnn_regnetx_3.2gf_fpn.py'

arch = 'regnety_3.2gf'
model = dict(
    backbone=dict(arch=arch, init_cfg=dict(checkpoint=f'checkpoints/{arch}_rgb.pth')),
    neck=dict(in_channels=[72, 216, 576, 1512]))
