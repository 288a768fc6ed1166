"""tools/train.py and tools/test.py end to end on the synthetic dataset, and the generator itself.

The detector and segmentor are the repository's configs shrunk by a small override config
(RegNetX-400MF, narrow heads, 64x64 images, a few iterations), run as subprocesses exactly as a
user would run them.
"""
import filecmp
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from regnet_backbone.runtime.dist import free_port
from regnet_backbone.demo.synthetic import CLASSES, make_synthetic_coco

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN, TEST = osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, 'tools', 'test.py')


# --- the generator -----------------------------------------------------------------------------
def _files(root):
    found = []
    for folder, _, names in os.walk(root):
        found += [osp.relpath(osp.join(folder, n), root) for n in names]
    return sorted(found)


def test_generator_is_deterministic_and_idempotent(tmp_path):
    a = make_synthetic_coco(tmp_path / 'a', num_train=3, num_val=2, size=64, seed=7)
    b = make_synthetic_coco(tmp_path / 'b', num_train=3, num_val=2, size=64, seed=7)
    files = _files(a.root)
    assert files == _files(b.root)
    # images, label maps, two jsons, the manifest and the marker
    assert len(files) == 2 * (3 + 2) + 4
    _, mismatch, errors = filecmp.cmpfiles(a.root, b.root, files, shallow=False)
    assert not mismatch and not errors

    stamps = {f: os.stat(osp.join(a.root, f)).st_mtime_ns for f in files}
    make_synthetic_coco(a.root, num_train=3, num_val=2, size=64, seed=7)  # complete: untouched
    assert stamps == {f: os.stat(osp.join(a.root, f)).st_mtime_ns for f in files}

    c = make_synthetic_coco(tmp_path / 'c', num_train=3, num_val=2, size=64, seed=8)
    first = 'train/000000.jpg'
    assert not filecmp.cmp(osp.join(a.root, first), osp.join(c.root, first), shallow=False)

    make_synthetic_coco(a.root, num_train=2, num_val=1, size=64, seed=7)  # smaller: no leftovers
    assert sorted(os.listdir(osp.join(a.root, 'train'))) == ['000000.jpg', '000001.jpg']


def test_generator_coco_masks_boxes_and_labels_agree(tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    spec = make_synthetic_coco(tmp_path / 'data', num_train=6, num_val=3, size=96, seed=1)
    for split, count in (('train', 6), ('val', 3)):
        coco = COCO(osp.join(spec.root, spec.ann_file(split)))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
        assert len(coco.getImgIds()) == count
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            image = cv2.imread(osp.join(spec.root, spec.img_dir(split), info['file_name']))
            assert image.shape == (96, 96, 3)
            labels = cv2.imread(osp.join(spec.root, spec.seg_dir(split),
                                         info['file_name'].replace('.jpg', '.png')),
                                cv2.IMREAD_UNCHANGED)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert 1 <= len(anns) <= 5
            covered = np.zeros(labels.shape, bool)
            for ann in anns:
                mask = coco.annToMask(ann).astype(bool)
                assert not (mask & covered).any(), 'visible masks must not overlap'
                covered |= mask
                ys, xs = np.nonzero(mask)
                box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert ann['bbox'] == [float(v) for v in box]
                assert ann['area'] == mask.sum() == mask_utils.area(ann['segmentation'])
                assert (labels[mask] == ann['category_id']).all()
                assert ann['iscrowd'] == 0
            assert (labels[~covered] == 0).all()


# --- train / test / resume ------------------------------------------------------------------------
@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    return make_synthetic_coco(tmp_path_factory.mktemp('synthetic'), num_train=4, num_val=2,
                               size=64, seed=0)


def _write_config(path, base, body):
    path.write_text(f'_base_ = {osp.join(ROOT, "configs", base)!r}\n{body}')
    return path


@pytest.fixture(scope='module')
def det_run(synthetic, tmp_path_factory, run_tool, explain, tiny_mask_rcnn):
    """A 2-iteration Mask R-CNN run from scratch; its work dir holds iter_2.pth."""
    tmp = tmp_path_factory.mktemp('det')
    body = tiny_mask_rcnn(data=synthetic.root + '/', classes=CLASSES, lr=0.01,
                          backbone=dict(arch='regnetx_400mf', frozen_stages=-1, norm_eval=False,
                                        init_cfg=None), in_channels=[32, 64, 160, 384])
    config = _write_config(tmp / 'mask_rcnn_tiny.py', 'mask_rcnn_regnetx_3.2gf_fpn.py', body)
    work_dir = tmp / 'work'
    proc = run_tool(TRAIN, config, '--work-dir', work_dir)
    assert proc.returncode == 0, explain(proc)
    return config, work_dir, proc


def test_train_detector_writes_checkpoint_and_evaluates(det_run):
    config, work_dir, proc = det_run
    checkpoint = work_dir / 'iter_2.pth'
    assert checkpoint.is_file()
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr  # validation ran at the last iteration
    # The file is a full Runner checkpoint (message hub, optimizer, schedulers), which safe
    # loading on torch >= 2.6 refuses unless the engine allow-lists what mmengine pickles.
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    assert {'message_hub', 'optimizer', 'param_schedulers', 'meta'} <= set(state)
    assert state['meta']['iter'] == 2


def test_resume_from_checkpoint_continues_at_saved_iteration(det_run, run_tool, explain):
    config, work_dir, _ = det_run
    resumed = work_dir.parent / 'resumed'
    proc = run_tool(TRAIN, config, '--work-dir', resumed, '--resume', work_dir / 'iter_2.pth',
                    '--cfg-options', 'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=1')
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert re.search(r'resumed epoch: \d+, iter: 2', log), explain(proc)
    assert not (resumed / 'iter_1.pth').exists() and not (resumed / 'iter_2.pth').exists()
    final = torch.load(resumed / 'iter_3.pth', map_location='cpu', weights_only=False)
    assert final['meta']['iter'] == 3


def test_test_tool_evaluates_checkpoint_and_dumps_predictions(det_run, run_tool, explain):
    config, work_dir, _ = det_run
    out = work_dir.parent / 'preds.pkl'
    proc = run_tool(TEST, config, work_dir / 'iter_2.pth', '--work-dir', work_dir.parent / 'test',
                    '--out', out)
    assert proc.returncode == 0, explain(proc)
    assert 'coco/segm_mAP' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2 and 'pred_instances' in predictions[0]


def test_train_and_test_segmentor(synthetic, tmp_path, run_tool, explain, tiny_upernet):
    config = _write_config(tmp_path / 'upernet_tiny.py', 'demo/upernet_regnetx_400mf_synthetic.py',
                           tiny_upernet(data=synthetic.root + '/'))
    proc = run_tool(TRAIN, config, '--work-dir', tmp_path / 'work')
    assert proc.returncode == 0, explain(proc)
    assert re.search(r'mIoU: \d', proc.stdout + proc.stderr), explain(proc)
    checkpoint = tmp_path / 'work' / 'iter_1.pth'
    proc = run_tool(TEST, config, checkpoint, '--work-dir', tmp_path / 'test', '--out',
                    tmp_path / 'labels')
    assert proc.returncode == 0, explain(proc)
    assert len(os.listdir(tmp_path / 'labels')) == 2


@pytest.mark.parametrize('tool,config,where', [
    (TRAIN, 'mask_rcnn_regnetx_3.2gf_fpn.py', 'data/coco/'),
    (TEST, 'upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py', 'data/ade/'),
], ids=['train-coco', 'test-ade20k'])
def test_missing_dataset_stops_with_one_line(tool, config, where, tmp_path, run_tool, explain):
    args = [tool, osp.join(ROOT, 'configs', config)]
    if tool == TEST:
        (tmp_path / 'model.pth').write_bytes(b'')
        args.append(tmp_path / 'model.pth')
    proc = run_tool(*args, '--work-dir', tmp_path / 'work', cwd=tmp_path)  # no data/ here
    assert proc.returncode == 1, explain(proc)
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, explain(proc)
    assert lines[0].startswith('error: dataset not found:') and where in lines[0]
    assert 'make demo' in lines[0]
    assert not (tmp_path / 'work').exists()  # stopped before the Runner started
    assert not (tmp_path / 'data').exists()  # and downloaded nothing


def test_engine_allow_list_covers_runner_checkpoints_and_nothing_more(det_run):
    """What mmengine pickled is allowed; safe loading still refuses anything else."""
    import io

    import numpy as np

    from regnet_backbone.checkpoints.io import runner_checkpoint_globals
    _, work_dir, _ = det_run
    checkpoint = work_dir / 'iter_2.pth'
    entries = runner_checkpoint_globals()
    allowed = {e[1] if isinstance(e, tuple) else f'{e.__module__}.{e.__qualname__}'
               for e in entries}
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint))
    assert needed <= allowed, needed - allowed

    class ReadsAnAttribute:
        def __reduce__(self):
            return getattr, (np.ndarray, 'tofile')

    evil = io.BytesIO()
    torch.save({'x': ReadsAnAttribute()}, evil)
    with torch.serialization.safe_globals(entries):  # scoped: other tests see the default
        state = torch.load(checkpoint, map_location='cpu')  # weights_only=True by default
        assert state['meta']['iter'] == 2
        assert state['message_hub']['log_scalars']['train/loss'].mean() > 0
        evil.seek(0)
        with pytest.raises(Exception, match='refusing getattr'):
            torch.load(evil)


def test_dist_train_on_cpu_uses_gloo_and_plain_bn(synthetic, tmp_path, tool_env, explain,
                                                  tiny_upernet):
    """tools/dist_train.sh with two CPU processes: gloo, SyncBN turned into BN, DDP on CPU."""
    config = _write_config(tmp_path / 'upernet_tiny.py', 'demo/upernet_regnetx_400mf_synthetic.py',
                           tiny_upernet(data=synthetic.root + '/'))
    # CUDA hidden: the CPU fallback is what this checks, on any machine.
    env = tool_env(PYTHON=sys.executable, PORT=free_port(), OMP_NUM_THREADS=1,
                   CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), str(config), '2',
                           '--work-dir', str(tmp_path / 'work')], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert "dist_cfg: {'backend': 'gloo'}" in log and 'Distributed training: True' in log
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()


# --- engine options, in process -------------------------------------------------------------------
def _config(name):
    from regnet_backbone.runtime.config import load_config
    return load_config(osp.join(ROOT, 'configs', name))


def test_engine_options_follow_mmdet_and_mmseg_tools(tmp_path):
    from regnet_backbone.runtime.config import codebase_of, configure_testing, configure_training
    from regnet_backbone.runtime.errors import CheckpointNotFoundError, ConfigError
    det = _config('mask_rcnn_regnetx_3.2gf_fpn.py')
    assert codebase_of(det) == 'mmdet'
    configure_training(det, 'configs/mask_rcnn_regnetx_3.2gf_fpn.py', resume='auto',
                       auto_scale_lr=True)
    assert det.work_dir == osp.join('./work_dirs', 'mask_rcnn_regnetx_3.2gf_fpn')
    assert det.resume is True and det.load_from is None and det.auto_scale_lr.enable is True
    with pytest.raises(CheckpointNotFoundError):
        configure_training(det, 'x.py', resume=str(tmp_path / 'missing.pth'))
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    configure_testing(det, 'x.py', str(checkpoint), out=str(tmp_path / 'out.pkl'))
    assert det.load_from == str(checkpoint)
    assert det.test_evaluator[-1].type == 'DumpDetResults'
    with pytest.raises(ConfigError, match='.pkl'):
        configure_testing(det, 'x.py', str(checkpoint), out=str(tmp_path / 'out'))

    seg = _config('upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py')
    assert codebase_of(seg) == 'mmseg'
    with pytest.raises(ConfigError, match='auto_scale_lr'):
        configure_training(seg, 'x.py', auto_scale_lr=True)
    configure_testing(seg, 'x.py', str(checkpoint), out=str(tmp_path / 'labels'))
    assert seg.test_evaluator.output_dir == str(tmp_path / 'labels')


@pytest.mark.parametrize('cuda', [False, True], ids=['no-cuda', 'cuda'])
def test_amp_takes_mmengines_amp_wrapper_and_needs_cuda(cuda, monkeypatch):
    """``--amp``: mmengine's AmpOptimWrapper with a dynamic loss scale where CUDA is, one line
    where it is not (the wrapper has no CPU mode); both branches on every machine."""
    from regnet_backbone.runtime.config import configure_training
    from regnet_backbone.runtime.errors import ToolError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    cfg = _config('upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py')
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    if not cuda:
        with pytest.raises(ToolError, match='--amp needs a CUDA GPU'):
            configure_training(cfg, 'x.py', amp=True)
        return
    configure_training(cfg, 'x.py', amp=True)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.loss_scale) == ('AmpOptimWrapper', 'dynamic')
    assert cfg.optim_wrapper.optimizer.type == 'SGD'  # the recipe's optimizer is kept


def test_engine_adapts_distributed_configs_to_cpu():
    from regnet_backbone.runtime.config import adapt_to_machine
    seg = _config('upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py')
    adapt_to_machine(seg, 'none', cuda=False)  # single process: mmengine reverts SyncBN
    assert seg.model.backbone.norm_cfg.type == 'SyncBN'
    adapt_to_machine(seg, 'pytorch', cuda=True)  # GPUs: untouched
    assert seg.model.backbone.norm_cfg.type == 'SyncBN' and 'model_wrapper_cfg' not in seg
    adapt_to_machine(seg, 'pytorch', cuda=False)
    assert seg.env_cfg.dist_cfg.backend == 'gloo'
    assert 'SyncBN' not in str(seg.model) and seg.model.decode_head.norm_cfg.type == 'BN'
    assert seg.model_wrapper_cfg.device_ids is None


# --- strict loading, one-line errors, the work dir lock, Ctrl-C, end to end ---------------------
@pytest.fixture(scope='session')
def one_error_line(explain):
    """The one ``error:`` line a tool's failed run printed (and nothing else)."""
    def check(proc):
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1 and 'Traceback' not in proc.stderr, explain(proc)
        assert len(lines) == 1 and lines[0].startswith('error: '), explain(proc)
        return lines[0]
    return check


def test_test_tool_refuses_a_checkpoint_that_does_not_fit(det_run, tmp_path, run_tool,
                                                          one_error_line):
    """A bare backbone file used to evaluate a random detector (bbox_mAP 0.0, exit 0)."""
    from regnet_backbone import RegNetBackbone
    config, _, _ = det_run
    bare = tmp_path / 'backbone.pth'
    torch.save(RegNetBackbone('regnetx_400mf').state_dict(), bare)
    proc = run_tool(TEST, config, bare, '--work-dir', tmp_path / 'test')
    line = one_error_line(proc)
    assert 'does not fit the model' in line and 'missing' in line and 'unexpected' in line
    assert 'bare RegNet backbone' in line and 'regnetx_400mf' in line
    assert 'bbox_mAP' not in proc.stdout


def test_resume_refuses_another_models_checkpoint(det_run, tmp_path, run_tool, one_error_line):
    config, work_dir, _ = det_run
    state = torch.load(work_dir / 'iter_2.pth', map_location='cpu', weights_only=False)
    weights = state['state_dict']
    for key in [k for k in weights if k.startswith('neck.')]:
        del weights[key]  # another model: no FPN, a 5-class box head
    weights['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(6, 64)
    other = tmp_path / 'other_model.pth'
    torch.save(state, other)
    resumed = tmp_path / 'resumed'
    proc = run_tool(TRAIN, config, '--work-dir', resumed, '--resume', other,
                    '--cfg-options', 'train_cfg.max_iters=3')
    line = one_error_line(proc)
    assert 'does not fit the model' in line and 'missing (neck.' in line
    assert '1 of the wrong shape (roi_head.bbox_head.fc_cls.weight [6, 64] != [4, 64])' in line
    assert not list(resumed.glob('*.pth'))
    bare = tmp_path / 'weights_only.pth'
    torch.save(weights, bare)
    line = one_error_line(run_tool(TRAIN, config, '--work-dir', resumed, '--resume', bare))
    assert 'not a training checkpoint' in line and 'load_from=' in line


def test_one_line_for_misspelled_arch_and_missing_pretrained(det_run, tmp_path, run_tool,
                                                             one_error_line):
    config, _, _ = det_run
    line = one_error_line(run_tool(TRAIN, config, '--work-dir', tmp_path / 'a', '--cfg-options',
                                    'model.backbone.arch=regnetx_3.2gg'))
    assert "unknown RegNet arch 'regnetx_3.2gg'" in line
    pretrained = tmp_path / 'pretrained.py'
    pretrained.write_text(f'_base_ = {str(config)!r}\nmodel = dict(backbone=dict(init_cfg=dict('
                          f"_delete_=True, type='Pretrained', "
                          f"checkpoint='checkpoints/regnetx_400mf_rgb.pth')))\n")
    line = one_error_line(run_tool(TRAIN, pretrained, '--work-dir', tmp_path / 'b', cwd=tmp_path))
    assert 'checkpoints/regnetx_400mf_rgb.pth' in line and 'not found' in line
    assert 'tools/convert_pretrained.py' in line and 'docs/pretrained.md' in line
    assert not (tmp_path / 'b').exists()


def test_second_run_into_a_locked_work_dir_is_refused(det_run, tmp_path, run_tool, one_error_line):
    from regnet_backbone.runtime.lock import WorkDirLock
    config, _, _ = det_run
    with WorkDirLock(str(tmp_path / 'work'), 'first run'):
        line = one_error_line(run_tool(TRAIN, config, '--work-dir', tmp_path / 'work'))
    assert f'PID {os.getpid()}' in line and 'in use by another training run' in line
    assert os.listdir(tmp_path / 'work') == []  # the first run's lock is gone, nothing else


def test_arch_override_trains_and_takes_over_a_stale_lock(det_run, tmp_path, run_tool, explain):
    """`model.backbone.arch=X` on a config whose FPN expects another arch trains: in_channels
    follow the backbone. The work dir holds the lock file of a killed run, which is taken over."""
    config, _, _ = det_run
    work = tmp_path / 'work'
    work.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    (work / 'train.lock').write_text(f'{{"pid": {dead.pid}, "host": "h"}}\n')
    proc = run_tool(TRAIN, config, '--work-dir', work, '--cfg-options',
                    'model.backbone.arch=regnetx_200mf', 'train_cfg.max_iters=1',
                    'default_hooks.checkpoint.interval=1')
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert 'model.neck.in_channels: [32, 64, 160, 384] -> [24, 56, 152, 368]' in log
    assert f'took over the stale lock {work / "train.lock"} of PID {dead.pid}' in log
    assert (work / 'iter_1.pth').is_file() and not (work / 'train.lock').exists()


def test_ctrl_c_ends_training_with_one_line_naming_the_checkpoint(det_run, tmp_path, tool_env):
    import signal
    import time
    config, _, _ = det_run
    work = tmp_path / 'work'
    env = tool_env()
    with open(tmp_path / 'out.txt', 'w') as out_file, open(tmp_path / 'err.txt', 'w') as err_file:
        proc = subprocess.Popen(  # files, not pipes: a full pipe would stall the training
            [sys.executable, TRAIN, str(config), '--work-dir', str(work), '--cfg-options',
             'train_cfg.max_iters=500', 'train_cfg.val_interval=1000',
             'default_hooks.checkpoint.interval=1'],
            cwd=ROOT, env=env, stdout=out_file, stderr=err_file,
            # Ctrl-C as in a terminal, even when this suite runs as a background job (whose
            # children inherit SIGINT ignored)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 240
        while not (work / 'last_checkpoint').is_file() and time.time() < deadline and \
                proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    out, err = (tmp_path / 'out.txt').read_text(), (tmp_path / 'err.txt').read_text()
    assert proc.returncode == 130, f'{proc.returncode}\n{out[-3000:]}\n{err[-3000:]}'
    assert 'Traceback' not in err + out
    lines = [line for line in err.splitlines() if line.strip()]
    last = (work / 'last_checkpoint').read_text()
    assert lines[-1] == (f'interrupted; the last complete checkpoint is {last}. Resume with: '
                         f'python tools/train.py {config} --work-dir {work} --resume')
    assert len(lines) == 1, err
    assert torch.load(last, map_location='cpu', weights_only=False)['meta']['iter'] >= 1


def test_runner_checkpoint_converts_to_a_backbone_checkpoint(det_run, tmp_path):
    """A Mask R-CNN trained with the backbone converts with the resume allow-list (it used to be
    called an unsafe pickle because of mmengine's HistoryBuffer)."""
    from regnet_backbone import RegNetBackbone
    from regnet_backbone.checkpoints import convert_file
    _, work_dir, _ = det_run
    out = tmp_path / 'checkpoints' / 'backbone.pth'  # the folder does not exist yet
    report = convert_file(str(work_dir / 'iter_2.pth'), str(out))
    assert report.arch == 'regnetx_400mf' and report.source_format == 'regnet_backbone'
    model = RegNetBackbone('regnetx_400mf', init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    model.init_weights()
    runner = torch.load(work_dir / 'iter_2.pth', map_location='cpu', weights_only=False)
    for key, value in model.state_dict().items():
        assert torch.equal(value, runner['state_dict'][f'backbone.{key}']), key


BGR_FEED = """
_base_ = {base!r}
model = dict(
    data_preprocessor=dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
                           bgr_to_rgb=False),
    backbone=dict(in_channel_order=None),
    test_cfg=dict(rcnn=dict(score_thr=0.0)))  # random weights: keep every detection
"""
MMDET_TWIN = """
_base_ = {base!r}
model = dict(backbone=dict(_delete_=True, type='RegNet', arch='regnetx_400mf', norm_eval=False,
                           init_cfg=None))
"""


def test_test_tool_evaluates_an_mmdet_regnet_detector_checkpoint(det_run, tmp_path, run_tool,
                                                                 explain, one_error_line):
    """mmdet's names (backbone.conv1, backbone.layer1.0.bn1, ...) are translated on load: our
    detector predicts exactly what mmdet's RegNet detector predicts from the same file."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    config, _, _ = det_run
    ours = tmp_path / 'ours_bgr.py'
    ours.write_text(BGR_FEED.format(base=str(config)))
    twin = tmp_path / 'mmdet_twin.py'
    twin.write_text(MMDET_TWIN.format(base=str(ours)))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(Config.fromfile(str(twin)).model)
    model.init_weights()
    assert 'backbone.layer1.0.bn1.weight' in model.state_dict()
    checkpoint = tmp_path / 'mmdet_regnet_detector.pth'
    # As mmengine's Runner saves it: the training config's text in meta['cfg'] (BGR feed).
    torch.save({'meta': {'mmdet_version': '3.3.0', 'cfg': Config.fromfile(str(twin)).pretty_text},
                'state_dict': model.state_dict()}, checkpoint)
    predictions = {}
    for name, cfg in (('mmdet', twin), ('ours', ours)):
        out = tmp_path / f'{name}.pkl'
        proc = run_tool(TEST, cfg, checkpoint, '--work-dir', tmp_path / name, '--out', out)
        assert proc.returncode == 0, explain(proc)
        with open(out, 'rb') as f:
            predictions[name] = pickle.load(f)
    assert 'renamed from mmdet' in proc.stdout + proc.stderr
    for a, b in zip(predictions['ours'], predictions['mmdet']):
        a, b = a['pred_instances'], b['pred_instances']
        assert len(b['scores']) > 0
        assert torch.allclose(a['bboxes'], b['bboxes'], atol=1e-3)
        assert torch.allclose(a['scores'], b['scores'], atol=1e-6)
    # The same BGR weights fed RGB (the base config's preprocessor) cannot be right.
    rgb_feed = tmp_path / 'ours_rgb_feed.py'
    rgb_feed.write_text(f'_base_ = {str(config)!r}\nmodel = dict(backbone=dict('
                        'in_channel_order=None))\n')
    line = one_error_line(run_tool(TEST, rgb_feed, checkpoint, '--work-dir', tmp_path / 'x'))
    assert 'expects BGR' in line and 'feeds RGB' in line and "in_channel_order='RGB'" in line


def _counting(monkeypatch):
    """Count RegNetBackbone builds and checkpoint reads (torch.load) in this process."""
    from regnet_backbone.models.backbone import RegNetBackbone
    counts = {'builds': 0, 'reads': []}
    init, load = RegNetBackbone.__init__, torch.load

    def counted_init(self, *args, **kwargs):
        counts['builds'] += 1
        init(self, *args, **kwargs)

    def counted_load(f, *args, **kwargs):
        counts['reads'].append(str(f))
        return load(f, *args, **kwargs)

    monkeypatch.setattr(RegNetBackbone, '__init__', counted_init)
    monkeypatch.setattr(torch, 'load', counted_load)
    return counts


def _tool_main(path):
    import runpy
    return runpy.run_path(str(path), run_name='regnet_tool')['main']


def test_a_run_builds_its_model_once_and_reads_each_checkpoint_once(det_run, tmp_path,
                                                                   monkeypatch):
    """Strict loading happens inside the engine (RegNetRunner): no pre-pass builds the model or
    reads the file a second time, for tools/train.py --resume and for tools/test.py."""
    config, work_dir, _ = det_run
    checkpoint = str(work_dir / 'iter_2.pth')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    counts = _counting(monkeypatch)
    rc = _tool_main(TRAIN)([str(config), '--work-dir', str(tmp_path / 'resumed'), '--resume',
                            checkpoint, '--cfg-options', 'train_cfg.max_iters=3',
                            'train_cfg.val_interval=10'])
    assert rc == 0
    assert counts['builds'] == 1
    assert counts['reads'].count(checkpoint) == 1, counts['reads']
    counts = _counting(monkeypatch)
    rc = _tool_main(TEST)([str(config), checkpoint, '--work-dir', str(tmp_path / 'test')])
    assert rc == 0
    assert counts['builds'] == 1
    assert counts['reads'] == [checkpoint]
