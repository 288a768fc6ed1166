# mmpretrain's RegNetX-400MF ImageNet config, read from the installed mmpretrain, with one
# change: type='RegNet' -> type='RegNetBackbone' (BGR preprocessing, as mmpretrain's).
_base_ = 'mmpretrain::regnet/regnetx-400mf_8xb128_in1k.py'
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)
model = dict(backbone=dict(type='RegNetBackbone'))
