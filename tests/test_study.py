"""Design-space studies (tools/study.py, the package regnet_backbone.study), CI-sized.

* setup: one trial config per sample, arch replaced, init_cfg gone, the neck / heads'
  in_channels equal to the sampled widths (UperNet and Mask R-CNN); study.json; a second setup
  with the same settings is a no-op, with other settings an error.
* End to end through the CLI, on tiny generated data (64x64 images, 4 iterations): two studies
  (regnetx, anynetx_a) of 2 trials, one trial made to fail (an impossible ``out_indices``):
  it is retried, recorded as failed with its error, and the other trials finish. collect writes
  results.json with the documented fields; a rerun skips every finished trial; Ctrl-C stops a
  run (one line, exit 130, no worker left) and the same command resumes the interrupted trial
  from its checkpoint; analyze writes the report and its PNGs.
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from regnet_backbone.design.presets import resolve_arch
from regnet_backbone.demo.synthetic import make_synthetic_coco
from regnet_backbone import study
from regnet_backbone.runtime.config import load_config
from regnet_backbone.study import launch, layout, recipe

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STUDY_TOOL = osp.join(ROOT, 'tools', 'study.py')
STUDY_CONFIG = osp.join(ROOT, 'configs', 'demo', 'study', 'upernet_regnet_study_synthetic.py')
DET_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_regnetx_400mf_fpn_synthetic.py')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
WINDOW = (100e6, 200e6)

# The study recipe at 64x64, 4 iterations validated at 2 and 4, on a handful of images.
TINY_CONFIG = """
_base_ = {base!r}
max_iters = 4
size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='Resize', scale=size, keep_ratio=False), dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=size, keep_ratio=False),
    dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=1))
log_processor = dict(window_size=1)
"""


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_synthetic_coco(tmp_path_factory.mktemp('synthetic'), num_train=8, num_val=2,
                               size=64, seed=0)


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('configs') / 'tiny_study.py'
    path.write_text(TINY_CONFIG.format(base=STUDY_CONFIG))
    return str(path)


# --- setup ---------------------------------------------------------------------------------------
def test_setup_writes_one_config_per_sample_with_channels_that_follow(tmp_path, data):
    from regnet_backbone.design.sampling import sample
    work = str(tmp_path / 'anynet')
    s = study.setup(STUDY_CONFIG, work, space='anynetx_a', n=3, seed=1, flops=WINDOW,
                    data_root=data.root)
    expected = sample('anynetx_a', 3, seed=1, flops=WINDOW)
    assert [t['arch'] for t in s['trials']] == [e.arch for e in expected]
    assert s['metric'] == 'mIoU' and s['codebase'] == 'mmseg' and s['space'] == 'anynetx_a'
    assert s['windows'] == dict(flops=list(WINDOW), params=None, acts=None)
    on_disk = json.loads(open(osp.join(work, 'study.json')).read())
    assert on_disk == s
    for trial, e in zip(s['trials'], expected):
        assert (trial['flops'], trial['params'], trial['acts']) == (e.flops, e.params, e.acts)
        assert WINDOW[0] <= trial['flops'] <= WINDOW[1]
        cfg = load_config(osp.join(work, 'trials', trial['trial'], 'config.py'))
        backbone = cfg.model.backbone
        assert backbone.arch == e.arch
        assert backbone.get('init_cfg') is None and 'init_cfg' not in backbone
        widths = list(resolve_arch(e.arch).widths)
        assert list(cfg.model.decode_head.in_channels) == widths
        assert cfg.model.auxiliary_head.in_channels == widths[2]
        # the data is read from the given root, whatever the working directory
        assert cfg.train_dataloader.dataset.data_root.rstrip('/') == data.root

    # the same settings again: untouched; other settings: refused
    assert study.setup(STUDY_CONFIG, work, space='anynetx_a', n=3, seed=1, flops=WINDOW,
                       data_root=data.root) == s
    with pytest.raises(study.StudyError, match='other settings'):
        study.setup(STUDY_CONFIG, work, space='anynetx_a', n=3, seed=2, flops=WINDOW,
                    data_root=data.root)


def test_setup_detection_config_fpn_follows_and_metric_is_bbox_map(tmp_path):
    s = study.setup(DET_CONFIG, str(tmp_path / 'det'), space='regnetx', n=2, seed=0,
                    flops=(200e6, 400e6))
    assert s['metric'] == 'coco/bbox_mAP' and s['codebase'] == 'mmdet'
    for trial in s['trials']:
        cfg = load_config(osp.join(tmp_path, 'det', 'trials', trial['trial'], 'config.py'))
        assert list(cfg.model.neck.in_channels) == list(resolve_arch(trial['arch']).widths)
        assert 'w0' in cfg.model.backbone.arch and 'init_cfg' not in cfg.model.backbone
        assert cfg.load_from is None


def test_default_metric_from_evaluator():
    from mmengine.config import Config
    assert recipe.default_metric(Config(dict(val_evaluator=dict(type='IoUMetric')))) == 'mIoU'
    assert recipe.default_metric(Config(dict(
        val_evaluator=dict(type='CocoMetric', metric=['bbox', 'segm'])))) == 'coco/bbox_mAP'
    assert recipe.default_metric(Config(dict(
        val_evaluator=dict(type='CocoMetric', metric='segm')))) == 'coco/segm_mAP'
    assert recipe.default_metric(Config(dict(
        val_evaluator=dict(type='Accuracy', topk=(1, 5))))) == 'accuracy/top1'
    with pytest.raises(study.StudyError, match='--metric'):
        recipe.default_metric(Config(dict(val_evaluator=dict(type='SomethingElse'))))


def test_setup_errors_are_one_line(tmp_path):
    with pytest.raises(study.StudyError, match='unknown design space'):
        study.setup(STUDY_CONFIG, str(tmp_path / 'x'), space='anynetx_z', n=2)
    with pytest.raises(study.StudyError, match='sampling regnetx'):  # unreachable window
        study.setup(STUDY_CONFIG, str(tmp_path / 'y'), space='regnetx', n=2, flops=(1e3, 2e3),
                    max_draws=2000)
    with pytest.raises(study.StudyError, match='not a study'):
        list(study.run(str(tmp_path / 'nothing')))
    with pytest.raises(study.StudyError, match='collect'):
        study.analyze([str(tmp_path / 'nothing')], str(tmp_path / 'report'))


# --- end to end ----------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def trained(tmp_path_factory, data, tiny_config, run_tool, explain):
    """Two studies set up and run through the CLI; anynetx_a/trial_001 is made to fail."""
    base = tmp_path_factory.mktemp('studies')
    dirs = {space: str(base / space) for space in ('regnetx', 'anynetx_a')}
    proc = run_tool(STUDY_TOOL, 'setup', tiny_config, dirs['regnetx'], '--space', 'regnetx',
                    '--n', 2, '--flops', *WINDOW, '--data-root', data.root, '--seed', 3)
    assert proc.returncode == 0, explain(proc)
    assert '2 trials of regnetx' in proc.stdout
    study.setup(tiny_config, dirs['anynetx_a'], space='anynetx_a', n=2, flops=WINDOW,
                data_root=data.root, seed=3)
    broken = osp.join(dirs['anynetx_a'], 'trials', 'trial_001', 'config.py')
    with open(broken, 'a') as f:  # an impossible setting: the backbone has 4 stages
        f.write("\nmodel['backbone']['out_indices'] = (0, 1, 2, 7)\n")
    proc = run_tool(STUDY_TOOL, 'run', *dirs.values(), '--jobs', 2, '--retries', 1)
    return dirs, proc


def test_run_trains_each_trial_and_records_a_failure(trained, explain):
    dirs, proc = trained
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    for name in ('regnetx/trial_000', 'regnetx/trial_001', 'anynetx_a/trial_000'):
        assert f'[study] {name} done in' in out, explain(proc)
    assert '[study] anynetx_a/trial_001 attempt 1 failed, retrying' in out, explain(proc)
    assert '[study] anynetx_a/trial_001 FAILED' in out and 'out_indices' in out
    assert 'ETA' in out and '3 done, 1 failed, 0 running, 0 queued' in out

    for space, trial in (('regnetx', 'trial_000'), ('regnetx', 'trial_001'),
                         ('anynetx_a', 'trial_000')):
        status = layout.read_status(dirs[space], trial)
        assert status['status'] == 'done' and status['attempts'] == 1 and status['error'] is None
        assert status['wall_time'] > 0
    failed = layout.read_status(dirs['anynetx_a'], 'trial_001')
    assert failed['status'] == 'failed' and failed['attempts'] == 2
    assert 'out_indices (0, 1, 2, 7) out of range' in failed['error']
    folder = osp.join(dirs['anynetx_a'], 'trials', 'trial_001')
    assert osp.isfile(osp.join(folder, 'attempt-2.err'))


def test_collect_writes_results_with_documented_fields(trained):
    from regnet_backbone.design.results import errors_for, load_results
    dirs, _ = trained
    for work in dirs.values():
        study.collect(work)
    path = osp.join(dirs['anynetx_a'], 'results.json')
    results = json.loads(open(path).read())
    settings = results['study']
    for key in ('name', 'space', 'n', 'seed', 'windows', 'base_config', 'metric'):
        assert key in settings
    assert settings['space'] == 'anynetx_a' and settings['metric'] == 'mIoU'
    setup = layout.load_study(dirs['anynetx_a'])
    by_name = {t['trial']: t for t in results['trials']}
    for trial in setup['trials']:
        record = by_name[trial['trial']]
        for key in ('arch', 'flops', 'params', 'acts'):
            assert record[key] == trial[key]
        assert set(record) >= {'trial', 'arch', 'flops', 'params', 'acts', 'status',
                               'metrics_final', 'metrics_best', 'error', 'wall_time'}
    done, failed = by_name['trial_000'], by_name['trial_001']
    assert done['status'] == 'done' and done['error'] is None and done['wall_time'] > 0
    assert 0 <= done['metrics_final']['mIoU'] <= done['metrics_best']['mIoU'] <= 100
    assert done['iterations'] == 4
    assert failed['status'] == 'failed' and 'out_indices' in failed['error']
    # the design layer reads what collect wrote
    assert errors_for(load_results(path), 'mIoU') == [100 - done['metrics_best']['mIoU']]


def test_rerun_skips_finished_trials(trained):
    dirs, _ = trained
    before = {p: os.stat(p).st_mtime_ns for p in _state_files(dirs)}
    events = list(study.run(list(dirs.values()), jobs=2))
    assert sorted((e.kind, e.study, e.trial, e.error is None) for e in events) == [
        ('skip', 'anynetx_a', 'trial_000', True), ('skip', 'anynetx_a', 'trial_001', False),
        ('skip', 'regnetx', 'trial_000', True), ('skip', 'regnetx', 'trial_001', True)]
    assert {p: os.stat(p).st_mtime_ns for p in _state_files(dirs)} == before


def _state_files(dirs):
    return sorted(p for work in dirs.values() for p in
                  [osp.join(r, f) for r, _, fs in os.walk(work) for f in fs]
                  if p.endswith(('status.json', '.out', '.err', 'scalars.json')))


def _children(pid):
    """The PIDs of the processes ``pid`` started (Linux)."""
    with open(f'/proc/{pid}/task/{pid}/children') as f:
        return [int(p) for p in f.read().split()]


def _running(pid) -> bool:
    """Whether process ``pid`` runs (a zombie that nobody reaped yet does not)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rpartition(')')[2].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_ctrl_c_stops_the_run_and_the_same_command_resumes(trained, tool_env, run_tool, explain):
    """Ctrl-C while a trial trains: one line, exit 130, no traceback, no worker left; the same
    command resumes the trial from its checkpoint (here the last one: --resume, then done)."""
    dirs, _ = trained
    work = dirs['regnetx']
    folder = osp.join(work, 'trials', 'trial_000')
    os.remove(osp.join(folder, 'status.json'))
    err_file = osp.join(folder, 'attempt-1.err')
    before = os.stat(err_file).st_mtime_ns
    cmd = [STUDY_TOOL, 'run', work, '--jobs', 1, '--threads', 1]
    proc = subprocess.Popen(
        [sys.executable, *map(str, cmd)], cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # Ctrl-C as in a terminal, even when this suite runs as a background job (whose
        # children inherit SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while os.stat(err_file).st_mtime_ns == before and time.time() < deadline and \
            proc.poll() is None:  # the worker started the attempt: its stderr is new
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, explain(subprocess.CompletedProcess(cmd, proc.returncode,
                                                                       out, err))
    assert err.strip().splitlines() == ['interrupted: run the same command again to resume']
    deadline = time.time() + 30
    while any(_running(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert workers and not any(_running(pid) for pid in workers)
    assert layout.read_status(work, 'trial_000') is None

    proc = run_tool(*cmd)
    assert proc.returncode == 0, explain(proc)
    assert '[study] regnetx/trial_001 finished earlier: skipped' in proc.stdout
    assert '[study] regnetx/trial_000 done in' in proc.stdout
    status = layout.read_status(work, 'trial_000')
    assert status['status'] == 'done' and status['resumed'] is True


def test_analyze_writes_report_and_pictures(trained, tmp_path, run_tool, explain):
    dirs, _ = trained
    proc = run_tool(STUDY_TOOL, 'collect', *dirs.values())
    assert proc.returncode == 0, explain(proc)
    assert '2 done' in proc.stdout and '1 done, 1 failed' in proc.stdout
    out = tmp_path / 'report'
    proc = run_tool(STUDY_TOOL, 'analyze', *dirs.values(), '--out', out)
    assert proc.returncode == 0, explain(proc)
    assert f'report: {out / "report.md"}' in proc.stdout
    report = (out / 'report.md').read_text()
    for text in ('Error EDFs', 'noisy', 'n = 500', 'KS distance', 'arch=dict(w0=',
                 'arch=dict(depths=', 'e_fit', 'Failed trials', 'out_indices', 'bootstrap'):
        assert text in report, text
    pictures = ['edf.png', 'regnetx_parameters.png', 'regnetx_best_widths.png',
                'anynetx_a_parameters.png', 'anynetx_a_best_widths.png']
    for name in pictures:
        assert f']({name})' in report
        with open(out / name, 'rb') as f:
            assert f.read(8) == PNG_SIGNATURE, name
    # the config line of the best model builds that model
    line = next(l for l in report.splitlines() if '`arch=dict(w0=' in l)
    arch_src = line.split('`')[1]
    arch = eval(arch_src[len('arch='):], {'dict': dict})
    assert arch in [t['arch'] for t in layout.load_study(dirs['regnetx'])['trials']]


def _empty_study(folder):
    """A study.json with no trials: enough for `run` to lock the study and finish at once."""
    folder.mkdir()
    (folder / 'study.json').write_text(json.dumps(dict(name=folder.name, metric='mIoU',
                                                       trials=[])))
    return str(folder)


def test_a_second_run_on_a_study_is_refused_and_a_refusal_unlocks_the_others(tmp_path):
    a, b = _empty_study(tmp_path / 'a'), _empty_study(tmp_path / 'b')
    held = launch.StudyLock(b).acquire()
    try:
        with pytest.raises(study.StudyError) as e:
            list(study.run([a, b]))
        assert str(e.value) == f'another `tools/study.py run` is running on {b}'
        # a was locked before b refused: its lock is free again, in this process too
        assert list(study.run(a)) == []
    finally:
        held.release()
    assert list(study.run([a, b])) == []
    assert not osp.exists(osp.join(a, launch.RUN_LOCK))  # released at the end of the run

