# UperNet on ADE20K with regnety_3.2gf (recipe: upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py).
_base_ = './upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py'

arch = 'regnety_3.2gf'
model = dict(
    backbone=dict(arch=arch, init_cfg=dict(checkpoint=f'checkpoints/{arch}_rgb.pth')),
    decode_head=dict(in_channels=[72, 216, 576, 1512]),
    auxiliary_head=dict(in_channels=576))
