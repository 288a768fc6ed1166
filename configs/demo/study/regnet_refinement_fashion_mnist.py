# The recipe of `make study-refinement` (`python tools/study.py refinement`): the `make study`
# recipe (regnet_study_fashion_mnist.py: data, model, optimizer, augmentation, one test on the
# first 2000 test images) with a shorter schedule, so that its 156 trials (six design spaces,
# 24 samples + 2 reruns each) fit in an hour on two cores.
#
# Why 60 steps: timed before the run (2026-12-07, 2 cores, one thread per trial, two at a time).
# One training step of the 144 networks that seed 0 samples took 0.405 s on average (0.36 s for
# AnyNetX_A's, 0.48 s for those of the initial RegNet space, whose deep samples are the slowest),
# so the 400 steps of `make study` would take about 3.8 hours. A pilot on other samples (seed 99,
# 2 a space, 64 steps) trained 175 trials an hour: a trial spends about 12 s outside its steps
# (start-up and the test). 60 steps make the 156 trials about 52 minutes (the run took 43). The
# schedule keeps its shape: linear warm-up over the first 5% (3 steps), then cosine to 0.
_base_ = './regnet_study_fashion_mnist.py'

max_iters = 60
warmup_iters = 3  # 5% of max_iters

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(logger=dict(interval=15), checkpoint=dict(interval=max_iters))
log_processor = dict(window_size=15)
