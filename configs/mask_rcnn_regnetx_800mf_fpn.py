# Mask R-CNN + FPN 1x with regnetx_800mf (recipe: mask_rcnn_regnetx_3.2gf_fpn.py).
_base_ = './mask_rcnn_regnetx_3.2gf_fpn.py'

arch = 'regnetx_800mf'
model = dict(
    backbone=dict(arch=arch, init_cfg=dict(checkpoint=f'checkpoints/{arch}_rgb.pth')),
    neck=dict(in_channels=[64, 128, 288, 672]))
