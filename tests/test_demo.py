"""The demo (tools/demo.py and configs/demo/) and crash-safe training, CI-sized.

* tools/demo.py --quick --seg end to end: both demo configs train on generated data, the loss goes
  down, mmdet's CocoMetric and mmseg's IoUMetric report, and the pictures are real PNGs.
* A training run killed with SIGKILL while it writes a checkpoint (the write is held open, so
  the kill lands inside it) leaves the previous checkpoint and pointer intact and no partial
  checkpoint, then resumes from there and finishes; every checkpoint left behind loads.
* tools/dist_train.sh runs the Mask R-CNN demo config in two CPU processes (gloo): distributed
  CocoMetric and a checkpoint. (tests/test_tools.py covers the launcher with UperNet.)
* Atomic writes, in process: a failed write leaves the previous checkpoint and pointer intact.
"""
import collections
import glob
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from regnet_backbone.atomic import replace_bytes
from regnet_backbone.runtime.dist import free_port
from regnet_backbone.demo.synthetic import make_synthetic_coco

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools')
DEMO, TRAIN = osp.join(TOOLS, 'demo.py'), osp.join(TOOLS, 'train.py')
DET_DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_regnetx_400mf_fpn_synthetic.py')
SEG_DEMO = osp.join(ROOT, 'configs', 'demo', 'upernet_regnetx_400mf_synthetic.py')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _load_png(path):
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == PNG_SIGNATURE, f'{path} is not a PNG'
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, f'{path} does not decode'
    return picture


def _bands(content, size):
    """(start, end) of each run of True in ``content`` at least ``size // 2`` long."""
    bands, start = [], None
    for i, value in enumerate(list(content) + [False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start >= size // 2:
                bands.append((start, i))
            start = None
    return bands


def _grid_cells(picture, size):
    """Read a grid of pictures on a white canvas back from the pixels: the row and column bands
    that are mostly not white (captions and a legend are thin, sparse lines of text), and the
    (row, column) cells of those bands that hold a picture."""
    white = (picture >= 250).all(axis=2)
    rows = _bands(white.mean(axis=1) < 0.8, size)
    columns = _bands(white.mean(axis=0) < 0.8, size)
    filled = [(r, c) for r in rows for c in columns
              if white[r[0]:r[1], c[0]:c[1]].mean() < 0.5]
    return rows, columns, filled


def _has_colour(picture, bgr, tolerance=12):
    return bool((np.abs(picture.astype(int) - bgr).max(axis=2) <= tolerance).any())


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """The data of ``tools/demo.py --quick`` (48 train / 8 val images, 128x128)."""
    return make_synthetic_coco(tmp_path_factory.mktemp('synthetic'), num_train=48, num_val=8,
                               size=128, seed=0)


# --- the demo, end to end ------------------------------------------------------------------------
def test_quick_demo_trains_evaluates_and_draws(synthetic, tmp_path, run_tool, explain):
    from regnet_backbone.runtime.logs import read_scalars
    work = tmp_path / 'demo'
    drawn, size = 6, synthetic.size  # validation images to draw, of size x size pixels
    args = ('--quick', '--seg', '--work-dir', work, '--data-root', synthetic.root,
            '--num-images', drawn)
    proc = run_tool(DEMO, *args)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    for stage in ('== data:', '== mask_rcnn: training', '== upernet: training', '== done in'):
        assert stage in out, explain(proc)
    assert re.search(r'Iter\(train\) \[\s*20/40\]', proc.stdout + proc.stderr)  # mmengine's log

    for name, metrics in (('mask_rcnn', ('coco/bbox_mAP', 'coco/segm_mAP')),
                          ('upernet', ('mIoU', ))):
        train, val = read_scalars(str(work / name))
        losses = [r['loss'] for r in train]
        assert len(losses) == 8, losses  # 40 iterations logged every 5
        assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), (name, losses)
        assert val and all(k in val[-1] for k in metrics), val
        assert val[-1]['step'] == 40
        for key in metrics:
            assert re.search(rf'{re.escape(key)}: +\d\.\d{{3}}', out), explain(proc)

        predictions = _load_png(work / f'{name}_predictions.png')
        assert predictions.std() > 10  # not a blank canvas
        # One picture per drawn image (Mask R-CNN), or three (UperNet: the image, its ground
        # truth and the prediction, side by side); each at the image's size.
        rows, columns, filled = _grid_cells(predictions, size)
        assert all(end - start == size for start, end in rows + columns), (rows, columns)
        if name == 'mask_rcnn':
            assert len(filled) == drawn, (rows, columns)
        else:
            assert len(columns) == 3 and len(filled) == 3 * drawn, (rows, columns)
        # The curves: a loss panel and a metric panel side by side, each with a line drawn in
        # matplotlib's first colour (tab:blue, #1f77b4; BGR as OpenCV reads it).
        curves = _load_png(work / f'{name}_training.png')
        height, width = curves.shape[:2]
        assert width > 2 * height and curves.std() > 10
        assert _has_colour(curves[:, :width // 2], (180, 119, 31)), 'no loss curve'
        assert _has_colour(curves[:, width // 2:], (180, 119, 31)), 'no metric curve'
        assert str(work / f'{name}_predictions.png') in out
    assert not glob.glob(str(work / '**' / '.*.tmp'), recursive=True)  # no temporary files

    again = run_tool(DEMO, *args)
    assert again.returncode == 0, explain(again)
    assert again.stdout.count('holds the final checkpoint: drawing only') == 2, explain(again)
    assert 'training 40 iterations' not in again.stdout and 'trained earlier' in again.stdout


# --- interruption ---------------------------------------------------------------------------------
TINY_OVERRIDES = """
_base_ = {base!r}
data_root = {data!r}
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters={iters}, val_interval={iters})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=4, end={iters}, T_max={iters} - 4),
]
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval={every}, max_keep_ckpts=2))
log_processor = dict(window_size=2)
# A model trained for a few iterations may score nothing above 0.05; CocoMetric then reports no
# metric at all. Keeping every detection makes the evaluation always produce its keys.
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))
"""


def _tiny_config(path, spec, iters, every):
    path.write_text(TINY_OVERRIDES.format(base=DET_DEMO, data=spec.root + '/', iters=iters,
                                          every=every))
    return path


def _checkpoint_iter(path):
    state = torch.load(path, map_location='cpu', weights_only=False)
    return state['meta']['iter']


#: tools/train.py with the write of one checkpoint held open: its temporary file stays in the
#: middle of ``replace_file`` (written, not yet renamed) for a minute, so a kill lands inside it.
HELD_WRITE = """
import os, runpy, sys, time
fsync = os.fsync
def held_fsync(fd):
    if os.path.basename(os.readlink(f'/proc/self/fd/{{fd}}')).startswith('.iter_{step}.pth.'):
        time.sleep(60)
    fsync(fd)
os.fsync = held_fsync
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_checkpoint_write_killed_midway_keeps_the_last_one_and_resumes(synthetic, tmp_path,
                                                                        tool_env, run_tool,
                                                                        explain):
    iters, every = 16, 4
    config = _tiny_config(tmp_path / 'tiny.py', synthetic, iters, every)
    work = tmp_path / 'work'
    pointer, interrupted = work / 'last_checkpoint', work / f'iter_{2 * every}.pth'
    partial = str(work / f'.{interrupted.name}.*.tmp')  # replace_file's temporary file
    log = open(tmp_path / 'killed.log', 'w')
    proc = subprocess.Popen([sys.executable, '-c', HELD_WRITE.format(step=2 * every), TRAIN,
                             str(config), '--work-dir', str(work)],
                            cwd=ROOT, env=tool_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not glob.glob(partial) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert glob.glob(partial) and proc.poll() is None, 'the held write never started'
        proc.send_signal(signal.SIGKILL)  # inside the write: before the rename
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    # Killed mid-write: the temporary file is left and nothing under the checkpoint's name; the
    # pointer names the previous checkpoint, whole.
    assert proc.returncode == -signal.SIGKILL and glob.glob(partial) and not interrupted.exists()
    assert pointer.read_text() == str(work / f'iter_{every}.pth')
    assert _checkpoint_iter(work / f'iter_{every}.pth') == every

    resumed = run_tool(TRAIN, config, '--work-dir', work, '--resume')
    assert resumed.returncode == 0, explain(resumed)
    output = resumed.stdout + resumed.stderr
    assert re.search(rf'resumed epoch: \d+, iter: {every}\b', output), explain(resumed)
    assert f'Iter(train) [{every + 2:>2}/{iters}]' in output
    assert 'coco/bbox_mAP' in output
    assert pointer.read_text() == str(work / f'iter_{iters}.pth')
    checkpoints = sorted(glob.glob(str(work / '*.pth')))
    assert str(work / f'iter_{iters}.pth') in checkpoints
    for path in checkpoints:  # nothing truncated
        assert _checkpoint_iter(path) == int(re.search(r'iter_(\d+)', path).group(1))
    assert not glob.glob(str(work / '.*.tmp'))  # the killed write's leftover is swept


# --- two processes --------------------------------------------------------------------------------
def test_dist_train_runs_the_demo_detector_on_cpu(synthetic, tmp_path, tool_env, explain):
    config = _tiny_config(tmp_path / 'tiny.py', synthetic, iters=8, every=8)
    # The CPU (gloo) path, on a GPU machine too: the processes see no CUDA device.
    env = tool_env(OMP_NUM_THREADS=1, PYTHON=sys.executable, PORT=free_port(),
                   CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', osp.join(TOOLS, 'dist_train.sh'), str(config), '2',
                           '--work-dir', str(tmp_path / 'work')], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert "dist_cfg: {'backend': 'gloo'}" in log and 'Distributed training: True' in log
    assert re.search(r'coco/bbox_mAP: \d', log) and re.search(r'coco/segm_mAP: \d', log)
    assert _checkpoint_iter(tmp_path / 'work' / 'iter_8.pth') == 8


# --- atomic writes, in process ------------------------------------------------------------------
def _failing_fsync(fd):
    raise OSError(28, 'No space left on device')


def test_failed_checkpoint_write_keeps_previous_file(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import save_checkpoint

    from regnet_backbone.runtime.hooks.atomic_checkpoint import ATOMIC_BACKEND
    path = str(tmp_path / 'iter_1.pth')
    backend = dict(backend=ATOMIC_BACKEND)
    save_checkpoint({'meta': {'iter': 1}, 'w': torch.ones(1000)}, path, backend_args=backend)
    before = open(path, 'rb').read()

    monkeypatch.setattr(os, 'fsync', _failing_fsync)  # the disk fills up after the bytes went out
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint({'meta': {'iter': 2}, 'w': torch.zeros(10 ** 6)}, path,
                        backend_args=backend)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['iter_1.pth']  # no partial or temporary file

    monkeypatch.undo()
    replace_bytes(path, b'new')
    assert open(path, 'rb').read() == b'new' and os.listdir(tmp_path) == ['iter_1.pth']


class _Runner:
    """What CheckpointHook uses of a Runner: a work dir, a message hub and save_checkpoint."""

    def __init__(self, work_dir):
        from mmengine.logging import MessageHub
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub(f'hook-test-{id(self)}')
        self.fail = False

    def save_checkpoint(self, out_dir, filename, file_client_args=None, backend_args=None,
                        meta=None, **kwargs):
        from mmengine.runner.checkpoint import save_checkpoint
        if self.fail:
            raise OSError(28, 'No space left on device')
        save_checkpoint({'meta': meta}, osp.join(out_dir, filename), backend_args=backend_args)


def test_checkpoint_hook_deletes_old_checkpoints_only_after_a_successful_save(tmp_path):
    from regnet_backbone.runtime.hooks.atomic_checkpoint import (ATOMIC_BACKEND,
                                                                 AtomicCheckpointHook,
                                                                 AtomicLocalBackend)
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    runner = _Runner(tmp_path)
    hook.out_dir, hook.file_backend = str(tmp_path), AtomicLocalBackend()
    hook.backend_args = dict(backend=ATOMIC_BACKEND)
    hook.keep_ckpt_ids = collections.deque([], 1)
    pointer = tmp_path / 'last_checkpoint'

    hook._save_checkpoint_with_step(runner, 1, dict(iter=1))
    assert pointer.read_text() == str(tmp_path / 'iter_1.pth')
    runner.fail = True
    with pytest.raises(OSError):
        hook._save_checkpoint_with_step(runner, 2, dict(iter=2))
    # mmengine's hook deletes iter_1.pth before saving iter_2.pth: a crash there leaves nothing.
    assert pointer.read_text() == str(tmp_path / 'iter_1.pth')
    assert _checkpoint_iter(tmp_path / 'iter_1.pth') == 1
    runner.fail = False
    hook._save_checkpoint_with_step(runner, 3, dict(iter=3))
    assert sorted(os.listdir(tmp_path)) == ['iter_3.pth', 'last_checkpoint']
    assert pointer.read_text() == str(tmp_path / 'iter_3.pth')


def test_engine_makes_every_training_config_write_atomically():
    from regnet_backbone.runtime.config import configure_training, load_config
    from regnet_backbone.runtime.hooks.atomic_checkpoint import ATOMIC_CHECKPOINT_HOOK
    for config in (DET_DEMO, SEG_DEMO, osp.join(ROOT, 'configs', 'mask_rcnn_regnetx_3.2gf_fpn.py')):
        cfg = load_config(config)
        configure_training(cfg, config)
        assert cfg.default_hooks.checkpoint.type == ATOMIC_CHECKPOINT_HOOK


# --- configs and helpers --------------------------------------------------------------------------
def test_use_data_root_moves_datasets_and_coco_ground_truth(tmp_path):
    from regnet_backbone.runtime.config import load_config
    from regnet_backbone.runtime.datasets import use_data_root
    cfg = load_config(DET_DEMO)
    use_data_root(cfg, str(tmp_path))
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == str(tmp_path) + '/'
    assert cfg.val_evaluator.ann_file == str(tmp_path / 'annotations' / 'instances_val.json')
    assert cfg.test_evaluator.ann_file == cfg.val_evaluator.ann_file


def test_read_scalars_stitches_resumed_and_restarted_runs(tmp_path):
    from regnet_backbone.runtime.logs import last_metrics, read_scalars

    def run(stamp, records):
        folder = tmp_path / stamp / 'vis_data'
        folder.mkdir(parents=True)
        lines = [json.dumps(r) for r in records] + ['{"loss": 1.0, "st']  # cut by a kill
        (folder / 'scalars.json').write_text('\n'.join(lines))

    run('20250101_000000', [dict(loss=3.0, step=10), dict(loss=2.0, step=20),
                            {'coco/bbox_mAP': 0.1, 'step': 20}, dict(loss=1.5, step=30)])
    run('20250101_010000', [dict(loss=1.8, step=30), dict(loss=1.0, step=40),
                            {'coco/bbox_mAP': 0.4, 'step': 40}])
    train, val = read_scalars(str(tmp_path))
    assert [(r['step'], r['loss']) for r in train] == [(10, 3.0), (20, 2.0), (30, 1.8), (40, 1.0)]
    assert last_metrics(val, ['coco/bbox_mAP']) == {'coco/bbox_mAP': 0.4}
    assert last_metrics(val, ['mIoU']) is None
    run('20250101_020000', [dict(loss=3.1, step=10)])  # a fresh run in the same folder
    assert [r['step'] for r in read_scalars(str(tmp_path))[0]] == [10]
    assert read_scalars(str(tmp_path / 'missing')) == ([], [])


def test_drawing_uses_mmdet_and_mmseg_visualizers(tmp_path):
    """The pictures are what mmdet's DetLocalVisualizer and mmseg's SegLocalVisualizer draw for
    the same predictions; a detection below the score threshold is not drawn."""
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData, PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer

    from regnet_backbone.demo import visualization as vis
    meta = dict(classes=('a', 'b'), palette=[(255, 0, 0), (0, 0, 255)])
    image = np.full((64, 64, 3), 100, np.uint8)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 10:30, 10:30] = masks[1, 40:60, 40:60] = True
    result = dict(image=image, boxes=np.array([[10, 10, 30, 30], [40, 40, 60, 60.]]),
                  labels=np.array([0, 1]), scores=np.array([0.9, 0.1]), masks=masks)
    np.random.seed(0)  # mmdet jitters each mask's colour with numpy's global generator
    (drawn, ), captions = vis.detection_pictures([result], *meta.values(), score_thr=0.5)
    reference = DetLocalVisualizer(name='reference_det')
    reference.dataset_meta = meta
    kept = InstanceData(bboxes=torch.tensor(result['boxes'][:1]), labels=torch.tensor([0]),
                        scores=torch.tensor([0.9]), masks=torch.tensor(masks[:1]))
    np.random.seed(0)
    reference.add_datasample('x', image, DetDataSample(pred_instances=kept), draw_gt=False)
    assert (drawn == reference.get_image()).all() and captions == ['val 0: 1 objects']
    assert drawn[20, 20, 0] > drawn[20, 20, 2] and (drawn[50, 50] == 100).all()

    labels = np.zeros((64, 64), int)
    labels[:, 32:] = 1
    seg = dict(image=image, ground_truth=labels, prediction=1 - labels)
    pictures, captions = vis.segmentation_pictures([seg], *meta.values())
    assert captions == ['val 0', 'ground truth', 'prediction'] and pictures[0] is image
    reference = SegLocalVisualizer(name='reference_seg')
    reference.dataset_meta = meta
    for picture, field, label_map in ((pictures[1], 'gt_sem_seg', labels),
                                      (pictures[2], 'pred_sem_seg', 1 - labels)):
        sample = SegDataSample(**{field: PixelData(data=torch.tensor(label_map)[None])})
        reference.add_datasample('x', image, sample)
        assert (picture == reference.get_image()).all()

    grid = vis.tile([drawn, *pictures], columns=2, captions=['w', *captions])
    path = vis.write_png(str(tmp_path / 'grid.png'), grid)
    assert (_load_png(path)[..., ::-1] == grid).all()
    assert os.listdir(tmp_path) == ['grid.png']
