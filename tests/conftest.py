"""Helpers the test files share, as fixtures.

With ``--import-mode=importlib`` (pytest.ini) a test module cannot ``import conftest``, and a
``tests`` package of ours would lose to the top-level ``tests`` package the mmsegmentation wheel
installs into site-packages; fixtures need neither.

The tools import whichever ``regnet_backbone`` Python finds first, so a tool run as a subprocess
gets this checkout at the front of ``PYTHONPATH`` (the shared cached venv may hold an editable
install of another checkout); ``checkout_on_path=False`` runs it with no ``PYTHONPATH`` at all,
as an installed package is used.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Mask R-CNN shrunk for a CPU (narrow heads, 64x64 images, two iterations), on top of
#: configs/mask_rcnn_regnetx_3.2gf_fpn.py and the synthetic dataset; ``str.format`` fields:
#: ``data`` (the dataset root, ending in ``/``), ``classes``, ``backbone`` (a dict of overrides),
#: ``in_channels`` (the backbone's) and ``lr``.
TINY_MASK_RCNN = """
data_root = {data!r}
metainfo = dict(classes={classes!r})
model = dict(
    backbone={backbone!r},
    neck=dict(in_channels={in_channels!r}, out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=3),
        mask_roi_extractor=dict(out_channels=32, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(in_channels=32, conv_out_channels=32, num_convs=1, num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(max_per_img=20)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=100, milestones=[3], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr={lr!r}))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2), logger=dict(interval=1))
log_processor = dict(by_epoch=False)
"""

#: UperNet shrunk for a CPU (one iteration, 64x64 crops), on top of
#: configs/demo/upernet_regnetx_400mf_synthetic.py; ``str.format`` field: ``data``. SyncBN as in
#: the ADE20K recipe, left as it is: a single process reverts it, the launcher's CPU path turns it
#: into BN.
TINY_UPERNET = """
data_root = {data!r}
norm_cfg = dict(_delete_=True, type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(channels=32, norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=16, norm_cfg=norm_cfg))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=(64, 64)),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""


def _tool_env(checkout_on_path: bool = True, **extra) -> dict:
    """``os.environ`` for a subprocess: this checkout first on ``PYTHONPATH`` (with
    ``checkout_on_path=False``: no ``PYTHONPATH``), two OpenMP threads and ``REGNET_DEBUG`` unset
    (the tools' one-line errors), then ``extra`` (values turned into strings)."""
    env = {k: v for k, v in os.environ.items() if k not in ('REGNET_DEBUG', 'PYTHONPATH')}
    if checkout_on_path:
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT),
                                                          os.environ.get('PYTHONPATH')]))
    env['OMP_NUM_THREADS'] = '2'
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _explain(proc: subprocess.CompletedProcess, tail: int = 4000) -> str:
    """An assertion message: the exit status and the last ``tail`` characters of each stream."""
    return (f'exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-tail:]}\n'
            f'STDERR:\n{proc.stderr[-tail:]}')


def _run_tool(*args, cwd=ROOT, env=None, timeout=600, python=sys.executable,
              checkout_on_path=True, check=False) -> subprocess.CompletedProcess:
    """``python ARGS...`` (a tool's path and its arguments; paths and numbers are fine) in
    ``cwd`` with :func:`_tool_env` plus ``env``; stdout and stderr captured as text. ``check``:
    assert that it exited with status 0."""
    proc = subprocess.run([str(python), *map(str, args)], cwd=cwd, capture_output=True,
                          env=_tool_env(checkout_on_path, **(env or {})), text=True,
                          timeout=timeout)
    assert not check or proc.returncode == 0, _explain(proc)
    return proc


@pytest.fixture(scope='session')
def tool_env():
    """:func:`_tool_env`, for subprocesses started otherwise (``Popen``, shell scripts)."""
    return _tool_env


@pytest.fixture(scope='session')
def run_tool():
    """:func:`_run_tool`: ``run_tool(TOOL, *args, cwd=ROOT, env=None, timeout=600,
    python=sys.executable, checkout_on_path=True, check=False)``."""
    return _run_tool


@pytest.fixture(scope='session')
def explain():
    """:func:`_explain`: ``assert proc.returncode == 0, explain(proc)``."""
    return _explain


@pytest.fixture(scope='session')
def tiny_mask_rcnn():
    """``tiny_mask_rcnn(data=, classes=, backbone=, in_channels=, lr=)``: the text of
    :data:`TINY_MASK_RCNN` (put a ``_base_`` line above it)."""
    return TINY_MASK_RCNN.format


@pytest.fixture(scope='session')
def tiny_upernet():
    """``tiny_upernet(data=)``: the text of :data:`TINY_UPERNET` (put a ``_base_`` line above
    it)."""
    return TINY_UPERNET.format


@pytest.fixture(scope='session')
def fashion_mnist_root(tmp_path_factory):
    """The real Fashion-MNIST files, unpacked once for the session (the package is installed by
    the set-up)."""
    from regnet_backbone.demo import fashion_mnist as fm
    root = str(tmp_path_factory.mktemp('fashion_mnist'))
    assert fm.prepare_fashion_mnist(root) == {'train': 60000, 'test': 10000}
    return root


@pytest.fixture(scope='session')
def study_slice():
    """The CI-sized slice of `make study` and `make study-refinement`: 2 samples a space plus 1
    rerun, 4 steps of 8 images each, 32 test images (arguments of tools/study.py)."""
    return ('--n', 2, '--repeats', 1, '--cfg-options', 'train_cfg.max_iters=4',
            'train_dataloader.batch_size=8', 'train_dataloader.dataset.indices=64',
            'val_dataloader.dataset.indices=32')
