# The paper's short schedule for comparing design spaces (section 3, and the configs of
# `tools/study.py` on ImageNet): 10 epochs, one GPU, batch 128, lr 0.05, half-period cosine,
# weight decay 5e-5, no warm-up. The error of a study's EDF is 100 - top-1 accuracy.
_base_ = './regnetx_400mf_8xb128_in1k.py'

max_epochs = 10
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=128)
