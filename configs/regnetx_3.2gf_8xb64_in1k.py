# ImageNet-1k with RegNetX-3.2GF (recipe: regnetx_400mf_8xb128_in1k.py). pycls trains the larger
# models with a batch of 512 (64 per GPU); the lr keeps pycls's 0.8 per 1024 images: 0.4.
_base_ = './regnetx_400mf_8xb128_in1k.py'

arch = 'regnetx_3.2gf'
model = dict(backbone=dict(arch=arch), head=dict(in_channels=1008))
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.4))
# lr 0.4 is for 8 x 64 = 512 images (the 400MF recipe's 1024 would halve it with --auto-scale-lr)
auto_scale_lr = dict(base_batch_size=512)
