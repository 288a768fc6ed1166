"""In process: strict loading, safe writes, one-line errors, mmdet's defaults.

The end-to-end cases (the tools run as subprocesses on a tiny training run) are in
tests/test_tools.py, next to the run they reuse.
"""
import inspect
import io
import json
import logging
import os
import os.path as osp
import signal
import stat
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from regnet_backbone import RegNetBackbone
from regnet_backbone.atomic import NotARegularFileError, replace_bytes
from regnet_backbone.checkpoints import (ArchitectureMismatchError, CheckpointError,
                                         CheckpointReadError, UnsafeCheckpointError,
                                         convert_file, read_checkpoint, write_atomic)
from regnet_backbone.demo.synthetic import MARKER, OutputFolderError, make_synthetic_coco
from regnet_backbone.runtime import cli
from regnet_backbone.runtime.config import configure_testing, configure_training, load_config
from regnet_backbone.runtime.engine import build_runner, train
from regnet_backbone.runtime.errors import (CheckpointRefusedError, ConfigError,
                                            PretrainedNotFoundError, WorkDirLockedError)
from regnet_backbone.runtime.hooks.atomic_checkpoint import (AtomicCheckpointHook,
                                                             AtomicLocalBackend,
                                                             last_complete_checkpoint)
from regnet_backbone.runtime.lock import LOCK_FILE, WorkDirLock
from regnet_backbone.runtime.runner import RegNetRunner
from regnet_backbone.runtime.strict_loading import resume_checkpoint

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONVERT = osp.join(ROOT, 'tools', 'convert_pretrained.py')
MAKE_DATA = osp.join(ROOT, 'tools', 'make_synthetic_data.py')


def stderr_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.fixture(scope='module')
def backbone_file(tmp_path_factory):
    """A converted (our format) regnetx_200mf checkpoint."""
    path = tmp_path_factory.mktemp('ckpt') / 'regnetx_200mf.pth'
    torch.manual_seed(0)
    model = RegNetBackbone('regnetx_200mf')
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


# --- item 5: mmdet's defaults and mmdet's own test cases -----------------------------------------
# mmdet 3.3's tests/test_models/test_backbones/test_regnet.py: the arch name, its arch dict and the
# widths it expects (mmdet's arch_settings and published widths).
MMDET_CASES = [
    ('regnetx_400mf', dict(w0=24, wa=24.48, wm=2.54, group_w=16, depth=22, bot_mul=1.0),
     [32, 64, 160, 384]),
    ('regnetx_800mf', dict(w0=56, wa=35.73, wm=2.28, group_w=16, depth=16, bot_mul=1.0),
     [64, 128, 288, 672]),
    ('regnetx_1.6gf', dict(w0=80, wa=34.01, wm=2.25, group_w=24, depth=18, bot_mul=1.0),
     [72, 168, 408, 912]),
    ('regnetx_3.2gf', dict(w0=88, wa=26.31, wm=2.25, group_w=48, depth=25, bot_mul=1.0),
     [96, 192, 432, 1008]),
    ('regnetx_4.0gf', dict(w0=96, wa=38.65, wm=2.43, group_w=40, depth=23, bot_mul=1.0),
     [80, 240, 560, 1360]),
    ('regnetx_6.4gf', dict(w0=184, wa=60.83, wm=2.07, group_w=56, depth=17, bot_mul=1.0),
     [168, 392, 784, 1624]),
    ('regnetx_8.0gf', dict(w0=80, wa=49.56, wm=2.88, group_w=120, depth=23, bot_mul=1.0),
     [80, 240, 720, 1920]),
    ('regnetx_12gf', dict(w0=168, wa=73.36, wm=2.37, group_w=112, depth=19, bot_mul=1.0),
     [224, 448, 896, 2240]),
]


@pytest.mark.parametrize('arch_name,arch,out_channels', MMDET_CASES,
                         ids=[c[0] for c in MMDET_CASES])
def test_mmdet_test_regnet_cases_pass(arch_name, arch, out_channels):
    """mmdet's test_regnet_backbone, on RegNetBackbone with mmdet's arguments. A batch of one
    32x32 image in train mode reaches stage 4 at 1x1: BN in training mode cannot normalise a
    single value per channel, so this passes only with mmdet's default norm_eval=True."""
    torch.manual_seed(0)
    with pytest.raises(ValueError):  # mmdet asserts; we raise a ValueError naming the presets
        RegNetBackbone(arch_name + '233')
    for model in (RegNetBackbone(arch_name), RegNetBackbone(arch)):
        model.init_weights()
        model.train()
        feat = model(torch.randn(1, 3, 32, 32))
        assert len(feat) == 4
        for level, (f, channels) in enumerate(zip(feat, out_channels)):
            side = 32 // 4 // 2**level
            assert f.shape == torch.Size([1, channels, side, side])


def test_defaults_match_mmdet_regnet():
    """Every argument RegNetBackbone shares with mmdet's RegNet has mmdet's default (read off
    mmdet's own signature), and both build the same network for mmdet's arch names."""
    from mmdet.models.backbones import RegNet
    theirs = inspect.signature(RegNet.__init__).parameters
    ours = inspect.signature(RegNetBackbone.__init__).parameters
    shared = (set(theirs) & set(ours)) - {'self', 'arch'}
    assert {'norm_eval', 'frozen_stages', 'norm_cfg', 'out_indices', 'zero_init_residual',
            'with_cp', 'stem_channels', 'in_channels', 'style', 'init_cfg'} <= shared
    for name in sorted(shared):
        want, have = theirs[name].default, ours[name].default
        if have is None and want is not None:  # resolved when built (per stage, per codebase)
            have = getattr(RegNetBackbone('regnetx_400mf'), name)
            want = tuple(want) if isinstance(want, list) else want
        assert have == want, f'{name}: ours {have!r}, mmdet {want!r}'
    mmdet_model = RegNet('regnetx_400mf')
    ours_model = RegNetBackbone('regnetx_400mf')
    assert sum(p.numel() for p in mmdet_model.parameters()) == \
        sum(p.numel() for p in ours_model.parameters())
    assert ours_model.norm_eval is True
    ours_model.train()
    assert not any(m.training for m in ours_model.modules() if isinstance(m, nn.BatchNorm2d))


def test_mmdet_style_argument():
    assert RegNetBackbone('regnetx_200mf', style='pytorch').out_channels == (24, 56, 152, 368)
    with pytest.raises(ValueError, match="'pytorch' style"):
        RegNetBackbone('regnetx_200mf', style='caffe')


# --- item 1: strict loading in every init_cfg form -----------------------------------------------
@pytest.mark.parametrize('form', ['dict', 'list', 'list-with-others'])
def test_pretrained_init_cfg_is_strict_in_every_form(form, backbone_file):
    """A checkpoint of another arch is refused whether init_cfg is a dict or a list (the list
    form went to mmengine's PretrainedInit, which loaded 1 of 480 tensors and warned)."""
    entry = dict(type='Pretrained', checkpoint=str(backbone_file))
    init_cfg = {'dict': entry, 'list': [entry],
                'list-with-others': [dict(type='Kaiming', layer='Conv2d'), entry]}[form]
    saved = torch.load(backbone_file, weights_only=True)['state_dict']
    model = RegNetBackbone('regnetx_400mf', init_cfg=init_cfg)
    with pytest.raises(ArchitectureMismatchError, match='regnetx_200mf'):
        model.init_weights()
    # not even the stem, whose shape is the same in both archs, was copied
    assert not torch.equal(model.stem.conv.weight, saved['stem.conv.weight'])
    # the right arch loads every tensor, in the same forms
    model = RegNetBackbone('regnetx_200mf', init_cfg=init_cfg)
    model.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_pretrained_prefix_takes_the_backbone_of_a_detector(tmp_path, backbone_file):
    saved = torch.load(backbone_file, weights_only=True)['state_dict']
    detector = {f'backbone.{k}': v for k, v in saved.items()}
    detector['neck.lateral_convs.0.conv.weight'] = torch.zeros(8, 24, 1, 1)
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': detector, 'meta': {}}, path)
    model = RegNetBackbone('regnetx_200mf', init_cfg=[dict(type='Pretrained', checkpoint=str(path),
                                                           prefix='backbone.')])
    model.init_weights()
    assert torch.equal(model.layer4[0].conv1.weight, saved['layer4.0.conv1.weight'])
    wrong = RegNetBackbone('regnetx_200mf', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                          prefix='encoder.'))
    with pytest.raises(CheckpointError, match="prefix 'encoder.'"):
        wrong.init_weights()


def test_partial_loading_is_an_explicit_opt_in(backbone_file):
    """strict=False in the Pretrained entry loads what fits (stem, shared names) and says so."""
    model = RegNetBackbone('regnetx_400mf', init_cfg=dict(
        type='Pretrained', checkpoint=str(backbone_file), strict=False))
    model.init_weights()
    saved = torch.load(backbone_file, weights_only=True)['state_dict']
    assert torch.equal(model.stem.conv.weight, saved['stem.conv.weight'])  # same shape: loaded
    assert model.layer1[0].conv1.weight.shape != saved['layer1.0.conv1.weight'].shape


# --- item 1/3: checkpoints given to the Runner, in process ----------------------------------------
DET_CONFIG = osp.join(ROOT, 'configs', 'mask_rcnn_regnetx_3.2gf_fpn.py')


def _det_cfg(**overrides):
    return load_config(DET_CONFIG, dict(overrides))


@pytest.fixture(scope='module')
def det_runner(tmp_path_factory, backbone_file):
    """The RegNetRunner tools/train.py builds for a regnetx_400mf Mask R-CNN whose ``load_from``
    is the bare regnetx_200mf backbone file (built once; no data is read, no weights loaded)."""
    cfg = _det_cfg(**{'model.backbone.arch': 'regnetx_400mf', 'model.backbone.init_cfg': None,
                      'load_from': str(backbone_file)})
    configure_training(cfg, DET_CONFIG, work_dir=str(tmp_path_factory.mktemp('runner')))
    runner = build_runner(cfg)
    assert isinstance(runner, RegNetRunner)
    yield runner
    # The Runner's logger stays mmengine's current one after this module: detach its log file,
    # or a later init_weights writes to the closed file.
    for handler in [h for h in runner.logger.handlers if isinstance(h, logging.FileHandler)]:
        runner.logger.removeHandler(handler)
        handler.close()


def test_unreadable_checkpoints_are_one_line_errors(tmp_path, backbone_file, det_runner):
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(backbone_file.read_bytes()[:5000])

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Evil()}, evil)
    random = tmp_path / 'random.pth'
    random.write_bytes(os.urandom(4096))
    for path, needle in ((truncated, 'not a readable checkpoint'), (evil, 'could run code'),
                         (random, 'not a checkpoint')):
        with pytest.raises(CheckpointRefusedError) as info:
            det_runner.load_checkpoint(str(path))
        message = str(info.value)
        assert needle in message and '\n' not in message and 'weights_only=False' not in message


def test_resume_needs_a_runner_checkpoint_and_a_live_pointer(tmp_path, backbone_file, det_runner):
    with pytest.raises(CheckpointRefusedError, match='not a training checkpoint'):
        det_runner.resume(str(backbone_file))
    cfg = _det_cfg()
    cfg.work_dir, cfg.resume, cfg.load_from = str(tmp_path), True, None
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    with pytest.raises(CheckpointRefusedError, match='iter_8.pth, which no longer exists'):
        resume_checkpoint(cfg)


def test_load_from_is_strict_and_the_misfit_message_names_both_architectures(det_runner):
    """``load_from`` (mmengine loads it with strict=False) is checked against the model the
    Runner built; the one line counts what does not fit and names both architectures."""
    with pytest.raises(CheckpointRefusedError) as info:
        det_runner.load_or_resume()
    message = str(info.value)
    assert '\n' not in message and 'does not fit the model' in message
    assert f'{len(det_runner.model.state_dict())} missing' in message  # no backbone. prefix
    assert 'unexpected (stem.conv.weight' in message
    assert 'regnetx_200mf' in message and 'regnetx_400mf' in message
    assert "model.backbone.init_cfg=dict(type='Pretrained'" in message
    assert 'partial_load=True' in message


def test_partial_load_is_a_warning_line(det_runner, backbone_file):
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    det_runner.logger.addHandler(handler)
    det_runner.cfg.partial_load = True  # the opt-in: a warning line instead
    try:
        det_runner.load_checkpoint(str(backbone_file))
    finally:
        det_runner.cfg.partial_load = False
        det_runner.logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if 'partial_load=True' in r.getMessage()]
    assert len(lines) == 1 and 'does not fit the model' in lines[0]


def test_missing_pretrained_names_the_converter_and_the_docs(tmp_path, monkeypatch):
    """tools/train.py's run refuses a missing ``init_cfg`` file before it builds or writes
    anything."""
    monkeypatch.chdir(tmp_path)  # a fresh clone with the data in place, but no checkpoints/
    for path in ('annotations/instances_train2017.json', 'annotations/instances_val2017.json'):
        (tmp_path / 'data' / 'coco' / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'data' / 'coco' / path).write_text('{}')
    for folder in ('train2017', 'val2017'):
        (tmp_path / 'data' / 'coco' / folder).mkdir()
    cfg = _det_cfg(**{'model.backbone.arch': 'regnetx_400mf'})
    configure_training(cfg, DET_CONFIG, work_dir=str(tmp_path / 'work'))
    with pytest.raises(PretrainedNotFoundError) as info:
        train(cfg, DET_CONFIG)
    message = str(info.value)
    assert '\n' not in message and 'checkpoints/regnetx_3.2gf_rgb.pth' in message
    assert 'tools/convert_pretrained.py' in message and 'docs/pretrained.md' in message
    assert 'model.backbone.init_cfg.checkpoint=checkpoints/regnetx_400mf_rgb.pth' in message
    assert not (tmp_path / 'work').exists()


# --- item 6 / 3: in_channels follow the arch; a misspelled arch is a ConfigError -----------------
def test_configure_sets_in_channels_from_arch_and_refuses_unknown_arch(tmp_path):
    cfg = _det_cfg(**{'model.backbone.arch': 'regnetx_400mf'})
    assert list(cfg.model.neck.in_channels) == [96, 192, 432, 1008]  # the shipped 3.2GF values
    configure_training(cfg, 'configs/mask_rcnn_regnetx_3.2gf_fpn.py', work_dir=str(tmp_path))
    assert list(cfg.model.neck.in_channels) == list(RegNetBackbone('regnetx_400mf').out_channels)
    seg = load_config(
        osp.join(ROOT, 'configs', 'upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py'),
        {'model.backbone.arch': 'regnety_400mf'})
    configure_testing(seg, 'x.py', str(__file__))
    assert list(seg.model.decode_head.in_channels) == [48, 104, 208, 440]
    assert seg.model.auxiliary_head.in_channels == 208
    bad = _det_cfg(**{'model.backbone.arch': 'regnetx_3.2gg'})
    with pytest.raises(ConfigError) as info:
        configure_training(bad, 'x.py', work_dir=str(tmp_path))
    assert "unknown RegNet arch 'regnetx_3.2gg'" in str(info.value)
    assert '\n' not in str(info.value)


# --- item 2: safe writes -------------------------------------------------------------------------
@pytest.mark.parametrize('umask', [0o022, 0o027, 0o002])
def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(umask, tmp_path):
    old = os.umask(umask)
    try:
        path = tmp_path / 'new.bin'
        replace_bytes(path, b'x')
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
        write_atomic({'state_dict': {'w': torch.zeros(1)}, 'meta': {}}, str(tmp_path / 'a.pth'))
        assert stat.S_IMODE(os.stat(tmp_path / 'a.pth').st_mode) == 0o666 & ~umask
        os.chmod(path, 0o604)
        replace_bytes(path, b'y')
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o604 and path.read_bytes() == b'y'
    finally:
        os.umask(old)


def test_symlink_is_written_through_and_special_files_are_refused(tmp_path):
    target = tmp_path / 'real' / 'model.pth'
    target.parent.mkdir()
    target.write_bytes(b'old')
    link = tmp_path / 'link.pth'
    link.symlink_to(target)
    replace_bytes(link, b'new')
    assert link.is_symlink() and target.read_bytes() == b'new'
    assert sorted(os.listdir(target.parent)) == ['model.pth']  # no temporary file left
    fifo = tmp_path / 'pipe'
    os.mkfifo(fifo)
    (tmp_path / 'dir').mkdir()
    for path in (fifo, tmp_path / 'dir', tmp_path / 'link-to-pipe'):
        if path.name == 'link-to-pipe':
            path.symlink_to(fifo)
        with pytest.raises(NotARegularFileError, match='not a regular file'):
            replace_bytes(path, b'x')
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and (tmp_path / 'dir').is_dir()


def test_convert_force_onto_fifo_and_symlink(tmp_path, backbone_file, run_tool):
    fifo = tmp_path / 'pipe.pth'
    os.mkfifo(fifo)
    proc = run_tool(CONVERT, backbone_file, fifo, '--force')
    assert proc.returncode == 1, proc.stderr
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith('error: refusing to write') and \
        'FIFO' in lines[0]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    target = tmp_path / 'store' / 'weights.pth'
    target.parent.mkdir()
    target.write_bytes(b'placeholder')
    link = tmp_path / 'weights.pth'
    link.symlink_to(target)
    proc = run_tool(CONVERT, backbone_file, link, '--force')
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert read_checkpoint(str(target))['meta']['arch'] == 'regnetx_200mf'


def test_converter_creates_the_output_folder(tmp_path, backbone_file):
    out = tmp_path / 'fresh-clone' / 'checkpoints' / 'regnetx_200mf_rgb.pth'
    report = convert_file(str(backbone_file), str(out))
    assert report.arch == 'regnetx_200mf' and out.is_file()


def test_generator_writes_only_into_its_own_folders(tmp_path, run_tool):
    foreign = tmp_path / 'photos'
    foreign.mkdir()
    (foreign / 'holiday.jpg').write_bytes(b'precious')
    with pytest.raises(OutputFolderError, match='not written by this generator'):
        make_synthetic_coco(foreign, num_train=1, num_val=1, size=32)
    assert os.listdir(foreign) == ['holiday.jpg'] and \
        (foreign / 'holiday.jpg').read_bytes() == b'precious'
    proc = run_tool(MAKE_DATA, foreign, '--num-train', 1, '--num-val', 1, '--size', 32)
    assert proc.returncode == 1 and len(stderr_lines(proc)) == 1, proc.stderr
    assert stderr_lines(proc)[0].startswith('error: ') and os.listdir(foreign) == ['holiday.jpg']

    empty = tmp_path / 'empty'
    empty.mkdir()
    make_synthetic_coco(empty, num_train=1, num_val=1, size=32)
    assert (empty / MARKER).is_file()
    make_synthetic_coco(empty, num_train=2, num_val=1, size=32)  # ours: regenerated
    assert sorted(os.listdir(empty / 'train')) == ['000000.jpg', '000001.jpg']
    older = tmp_path / 'older'  # generated before the marker existed: its manifest says ours
    make_synthetic_coco(older, num_train=1, num_val=1, size=32)
    os.remove(older / MARKER)
    make_synthetic_coco(older, num_train=1, num_val=1, size=32)
    assert (older / MARKER).is_file()


def test_work_dir_lock_refuses_a_second_holder_and_takes_over_a_stale_lock(tmp_path):
    first = WorkDirLock(str(tmp_path), 'a.py').acquire()
    info = json.loads((tmp_path / LOCK_FILE).read_text())
    assert info['pid'] == os.getpid() and info['config'] == 'a.py'
    with pytest.raises(WorkDirLockedError, match=f'PID {os.getpid()}'):
        WorkDirLock(str(tmp_path)).acquire()
    first.release()
    assert not (tmp_path / LOCK_FILE).exists()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps(dict(pid=dead.pid, host='x')))
    with WorkDirLock(str(tmp_path)) as lock:  # stale: nobody holds the flock
        assert lock.taken_over['pid'] == dead.pid
        assert json.loads((tmp_path / LOCK_FILE).read_text())['pid'] == os.getpid()


# --- item 3: Ctrl-C during a save, and the CLI's error handling ----------------------------------
def test_ctrl_c_during_a_save_finishes_the_save_then_stops(tmp_path):
    from mmengine.logging import MessageHub

    class Runner:
        work_dir = str(tmp_path)
        message_hub = MessageHub.get_instance('reliability-sigint')

        def save_checkpoint(self, out_dir, filename, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the save
            replace_bytes(osp.join(out_dir, filename), b'complete checkpoint')

    hook = AtomicCheckpointHook(interval=1, by_epoch=False)
    hook.out_dir, hook.args = str(tmp_path), {}
    hook.file_backend = AtomicLocalBackend()
    hook.keep_ckpt_ids = []
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when the suite
    with pytest.raises(KeyboardInterrupt):    # runs as a background job
        hook._save_checkpoint_with_step(Runner(), 3, {})
    assert (tmp_path / 'iter_3.pth').read_bytes() == b'complete checkpoint'
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_3.pth')
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_3.pth')
    assert signal.getsignal(signal.SIGINT) is before  # the save's own handler is gone again


def test_cli_turns_user_errors_and_interrupts_into_one_line(capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)

    def fail(error):
        def body():
            raise error
        return body

    assert cli.run(fail(ConfigError('bad arch'))) == 1
    assert capsys.readouterr().err == 'error: bad arch\n'
    assert cli.run(fail(UnsafeCheckpointError('x.pth: refused'))) == 1
    assert capsys.readouterr().err == 'error: x.pth: refused\n'
    try:  # mmengine's config formatting catches Ctrl-C and raises SyntaxError from it
        try:
            raise KeyboardInterrupt
        except BaseException:
            raise SyntaxError('Failed to format the config file')
    except SyntaxError as disguised:
        error = disguised
    assert cli.run(fail(error), on_interrupt=lambda: 'interrupted; resume with X') == 130
    assert capsys.readouterr().err == 'interrupted; resume with X\n'
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli.run(lambda: 1 / 0)
    with pytest.raises(ConfigError):  # --debug
        cli.run(fail(ConfigError('bad arch')), debug=True)
    monkeypatch.setenv(cli.DEBUG_ENV, '1')
    with pytest.raises(ConfigError):
        cli.run(fail(ConfigError('bad arch')))


# --- item 4: the converter reads what our tools write --------------------------------------------
def test_random_bytes_are_not_a_checkpoint_and_unsafe_pickles_name_the_object(tmp_path):
    random = tmp_path / 'random.pth'
    random.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(CheckpointReadError, match='not a checkpoint'):
        read_checkpoint(str(random))

    class Evil:
        def __reduce__(self):
            return (print, ('ran',))

    buffer = io.BytesIO()
    torch.save({'w': Evil()}, buffer)
    evil = tmp_path / 'evil.pth'
    evil.write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(str(evil))
    assert 'print' in str(info.value) and '()' not in str(info.value)


def test_nonfinite_values_give_a_warning_line(tmp_path, backbone_file, run_tool):
    state = torch.load(backbone_file, weights_only=True)
    state['state_dict']['layer2.0.conv1.weight'][0, 0, 0, 0] = float('nan')
    state['state_dict']['stem.norm.running_var'][0] = float('inf')
    bad = tmp_path / 'diverged.pth'
    torch.save(state, bad)
    proc = run_tool(CONVERT, bad, tmp_path / 'out.pth')
    assert proc.returncode == 0, proc.stderr
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith('warning: 2 tensors hold NaN or Inf')


def test_export_to_timm_safetensors(tmp_path, backbone_file):
    import timm
    from safetensors.torch import load_file
    out = tmp_path / 'timm.safetensors'
    convert_file(str(backbone_file), str(out), to='timm')
    model = timm.create_model('regnetx_002', pretrained=False, num_classes=0)
    model.load_state_dict(load_file(str(out)))  # strict: every tensor, no classifier


def test_full_disk_is_one_line(tmp_path, backbone_file, monkeypatch):
    def full(obj, path):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise RuntimeError('[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0:'
                           ' PytorchStreamWriter failed writing file data/0: file write failed')

    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(CheckpointError) as info:
        convert_file(str(backbone_file), str(tmp_path / 'out.pth'))
    assert 'No space left on device (the disk is full' in str(info.value)
    assert '\n' not in str(info.value)
    assert os.listdir(tmp_path) == []
