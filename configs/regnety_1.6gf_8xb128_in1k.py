# ImageNet-1k with RegNetY-1.6GF (recipe: regnetx_400mf_8xb128_in1k.py).
_base_ = './regnetx_400mf_8xb128_in1k.py'

arch = 'regnety_1.6gf'
model = dict(backbone=dict(arch=arch), head=dict(in_channels=888))
