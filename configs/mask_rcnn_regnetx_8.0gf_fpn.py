# Mask R-CNN + FPN 1x with regnetx_8.0gf (recipe: mask_rcnn_regnetx_3.2gf_fpn.py).
_base_ = './mask_rcnn_regnetx_3.2gf_fpn.py'

arch = 'regnetx_8.0gf'
model = dict(
    backbone=dict(arch=arch, init_cfg=dict(checkpoint=f'checkpoints/{arch}_rgb.pth')),
    neck=dict(in_channels=[80, 240, 720, 1920]))
