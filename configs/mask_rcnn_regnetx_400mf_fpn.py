# Mask R-CNN + FPN 1x with regnetx_400mf (recipe: mask_rcnn_regnetx_3.2gf_fpn.py).
_base_ = './mask_rcnn_regnetx_3.2gf_fpn.py'

arch = 'regnetx_400mf'
model = dict(
    backbone=dict(arch=arch, init_cfg=dict(checkpoint=f'checkpoints/{arch}_rgb.pth')),
    neck=dict(in_channels=[32, 64, 160, 384]))
