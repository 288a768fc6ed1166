"""Fashion-MNIST for `make study`: the set-up step, the unpacking, the recipe, CI-sized.

* ``tools/get_fashion_mnist.sh`` (run by tools/setup_env.sh): installs Debian's package through
  apt only when the files are missing (an apt-get stand-in records its calls), so a second run
  does nothing; without apt, or when apt fails, it says so in one line and exits 1 (setup_env.sh
  goes on).
* :func:`prepare_fashion_mnist` on the real files under /usr/share/datasets/fashion-mnist:
  mmpretrain's own idx reader reads what it unpacked, with the published sizes (60,000 + 10,000
  images of 28x28, 6,000 / 1,000 of each of the 10 classes); a second call leaves the files
  untouched; a truncated file is replaced; a missing package is one error naming apt.
* The study recipe (configs/demo/study/regnet_study_fashion_mnist.py): its input is the image
  padded with zeros at the bottom and right to 32x32, its normalisation is the training set's own
  mean / std, the backbone's last map is 2x2 (32 / 2 (stem) / 1 / 2 / 2 / 2), and two trials of a
  study on a slice of the real files train a few iterations one after the other in one
  long-lived worker of the local executor (regnet_backbone.study.executors), each logging a
  top-1 accuracy.
"""
import os
import os.path as osp
import shutil
import subprocess

import numpy as np
import pytest

from regnet_backbone.demo import fashion_mnist as fm

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(ROOT, 'tools', 'get_fashion_mnist.sh')
RECIPE = osp.join(ROOT, 'configs', 'demo', 'study', 'regnet_study_fashion_mnist.py')
GZ_FILES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
            't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']

# An apt-get stand-in: logs its arguments, then "installs" the package by creating the files.
FAKE_APT = """#!/usr/bin/env bash
echo "$*" >> "{log}"
[[ "$1" == install ]] || exit 0
mkdir -p "{target}"
for f in {files}; do echo data > "{target}/$f"; done
"""
FAILING_APT = """#!/usr/bin/env bash
echo "E: Unable to locate package dataset-fashion-mnist" >&2
exit 100
"""


def run_script(tmp_path, target, apt):
    env = dict(os.environ, REGNET_FASHION_MNIST_DIR=str(target), APT_GET=str(apt))
    return subprocess.run(['bash', SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_setup_step_installs_only_when_missing(tmp_path):
    target, log = tmp_path / 'datasets' / 'fashion-mnist', tmp_path / 'apt.log'
    apt = tmp_path / 'apt-get'
    apt.write_text(FAKE_APT.format(log=log, target=target, files=' '.join(GZ_FILES)))
    apt.chmod(0o755)
    first = run_script(tmp_path, target, apt)
    assert first.returncode == 0, first.stderr
    assert log.read_text().split() == ['install', '-y', '--no-install-recommends',
                                       'dataset-fashion-mnist']
    assert sorted(os.listdir(target)) == sorted(GZ_FILES)
    second = run_script(tmp_path, target, apt)
    assert second.returncode == 0, second.stderr
    assert len(log.read_text().splitlines()) == 1  # not called again
    assert second.stderr.strip().splitlines() == [f'[setup] Fashion-MNIST: {target} (kept)']


def test_setup_step_without_apt_or_when_apt_fails_says_so_in_one_line(tmp_path):
    target = tmp_path / 'absent'
    no_apt = run_script(tmp_path, target, tmp_path / 'no-such-apt-get')
    assert no_apt.returncode == 1
    lines = no_apt.stderr.strip().splitlines()
    assert len(lines) == 1 and 'apt-get is unavailable' in lines[0]
    assert 'dataset-fashion-mnist' in lines[0] and '--download' in lines[0]

    apt = tmp_path / 'apt-get'
    apt.write_text(FAILING_APT)
    apt.chmod(0o755)
    failed = run_script(tmp_path, target, apt)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert lines[-1].startswith('[setup] could not install dataset-fashion-mnist (E: Unable to '
                                'locate package dataset-fashion-mnist)')
    assert len(lines) == 2  # what it tries, then why it failed
    assert not target.exists()


def test_unpacked_files_are_what_mmpretrain_reads(fashion_mnist_root):
    from mmpretrain.datasets.mnist import read_image_file, read_label_file
    images = read_image_file(osp.join(fashion_mnist_root, 't10k-images-idx3-ubyte'))
    labels = read_label_file(osp.join(fashion_mnist_root, 't10k-labels-idx1-ubyte'))
    assert tuple(images.shape) == (10000, 28, 28)
    assert np.bincount(labels.numpy(), minlength=10).tolist() == [1000] * 10
    train = read_label_file(osp.join(fashion_mnist_root, 'train-labels-idx1-ubyte'))
    assert np.bincount(train.numpy(), minlength=10).tolist() == [6000] * 10
    from mmpretrain.datasets import FashionMNIST
    dataset = FashionMNIST(data_root=fashion_mnist_root, split='test', test_mode=True,
                           download=False)
    assert len(dataset) == 10000 and dataset.metainfo['classes'][9] == fm.CLASSES[9]


def test_prepare_is_idempotent_and_replaces_a_truncated_file(fashion_mnist_root, tmp_path):
    names = [n for pair in fm.FILES.values() for n in pair]
    before = {n: os.stat(osp.join(fashion_mnist_root, n)) for n in names}
    fm.prepare_fashion_mnist(fashion_mnist_root)
    after = {n: os.stat(osp.join(fashion_mnist_root, n)) for n in names}
    assert all((before[n].st_ino, before[n].st_mtime_ns) == (after[n].st_ino, after[n].st_mtime_ns)
               for n in names)

    copy = tmp_path / 'copy'
    copy.mkdir()
    for n in names:
        shutil.copyfile(osp.join(fashion_mnist_root, n), copy / n)
    labels = copy / 'train-labels-idx1-ubyte'
    labels.write_bytes(labels.read_bytes()[:1000])  # an interrupted copy
    assert fm.missing_files(str(copy)) == ['train-labels-idx1-ubyte']
    untouched = os.stat(copy / 'train-images-idx3-ubyte')
    assert fm.prepare_fashion_mnist(str(copy)) == {'train': 60000, 'test': 10000}
    assert labels.stat().st_size == 8 + 60000
    assert os.stat(copy / 'train-images-idx3-ubyte').st_mtime_ns == untouched.st_mtime_ns
    assert not [n for n in os.listdir(copy) if n.startswith('.')]  # no temporary file left


def test_missing_package_is_one_error_naming_apt(tmp_path):
    with pytest.raises(fm.FashionMNISTNotFoundError) as info:
        fm.prepare_fashion_mnist(str(tmp_path / 'out'), source=str(tmp_path / 'nothing'))
    message = str(info.value)
    assert '\n' not in message and 'apt-get install dataset-fashion-mnist' in message


def _recipe(data_root, **options):
    from regnet_backbone.runtime.config import load_config
    from regnet_backbone.runtime.datasets import use_data_root
    cfg = load_config(RECIPE, options or None)
    use_data_root(cfg, data_root)
    return cfg


def test_recipe_input_is_padded_normalised_and_ends_in_a_2x2_map(fashion_mnist_root):
    import torch
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS, MODELS
    from regnet_backbone.runtime.config import follow_channels
    cfg = _recipe(fashion_mnist_root)
    from mmpretrain.datasets.mnist import read_image_file
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        val = DATASETS.build(cfg.val_dataloader.dataset)
        follow_channels(cfg)
        model = MODELS.build(cfg.model)
    assert len(val) == 2000  # the first 2000 test images
    raw = val.get_data_info(0)['img']
    packed = val[0]['inputs']
    assert tuple(packed.shape) == (1, 32, 32)
    assert torch.equal(packed[0, :28, :28], torch.from_numpy(raw))
    assert packed[0, 28:].abs().sum() == 0 and packed[0, :, 28:].abs().sum() == 0

    images = read_image_file(osp.join(fashion_mnist_root, 'train-images-idx3-ubyte')).numpy()
    images = images.astype(np.float64)
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.mean[0] == pytest.approx(images.mean(), abs=0.01)
    assert preprocessor.std[0] == pytest.approx(images.std(), abs=0.01)

    batch = model.data_preprocessor(dict(inputs=[val[i]['inputs'] for i in range(2)],
                                         data_samples=[val[i]['data_samples'] for i in range(2)]))
    features = model.backbone(batch['inputs'])
    assert tuple(features[-1].shape) == (2, model.backbone.spec.widths[-1], 2, 2)


# The package's train CLI, recording which process ran it.
TRAIN_IN_PID = '''
import os
from regnet_backbone.runtime.train import main as train


def main(argv):
    with open(os.path.join(os.path.dirname(argv[0]), 'pid'), 'w') as f:
        f.write(str(os.getpid()))
    return train(argv)
'''


def test_two_trials_train_on_real_data_in_one_worker(fashion_mnist_root, tmp_path):
    from regnet_backbone import study
    from regnet_backbone.study.attempt import Attempt
    from regnet_backbone.study.executors import LocalBackend
    from regnet_backbone.study.layout import trial_dir
    tool = tmp_path / 'train_in_pid.py'
    tool.write_text(TRAIN_IN_PID)
    # A slice: 3 steps of 16 of the first 128 training images, tested on the first 64.
    options = {'train_cfg.max_iters': 3, 'train_dataloader.batch_size': 16,
               'train_dataloader.dataset.indices': 128, 'val_dataloader.dataset.indices': 64,
               'val_dataloader.batch_size': 64, 'default_hooks.logger.interval': 1}
    work = str(tmp_path / 'study')
    s = study.setup(RECIPE, work, space='regnetx', n=2, seed=0, flops=(100e6, 200e6),
                    cfg_options=options, data_root=fashion_mnist_root)
    attempts = [Attempt(study=work, trial=t['trial'], number=1,
                        config=osp.join(trial_dir(work, t['trial']), 'config.py'),
                        work_dir=osp.join(trial_dir(work, t['trial']), 'work'),
                        train_tool=str(tool), threads=1, cwd=ROOT, metric=s['metric'])
                for t in s['trials']]
    backend = LocalBackend(jobs=1)
    try:
        outcomes = [h.result(timeout=600) for h in backend.submit(attempts)]
    finally:
        backend.close()
    for outcome in outcomes:
        assert outcome['ok'], outcome['error']
        assert 0 <= outcome['metrics']['accuracy/top1'] <= 100
    pids = {int(open(osp.join(osp.dirname(a.config), 'pid')).read()) for a in attempts}
    assert len(pids) == 1 and pids != {os.getpid()}
    from regnet_backbone.runtime.logs import read_scalars
    for a in attempts:
        train_log, val_log = read_scalars(a.work_dir)
        assert [r['step'] for r in train_log] == [1, 2, 3]
        assert np.isfinite([r['loss'] for r in train_log]).all()


def test_make_study_demo_end_to_end_on_a_slice(fashion_mnist_root, study_slice, tmp_path,
                                                run_tool):
    """`tools/study.py demo` (what `make study` runs), shrunk: 2 samples a space plus 1 rerun,
    4 steps of 8 images each, through the local executor; it prints the verdict and where
    the report, summary.json and the EDF picture are."""
    import json
    out = tmp_path / 'study'
    proc = run_tool(
        osp.join(ROOT, 'tools', 'study.py'), 'demo', '--out', out, '--data-root',
        fashion_mnist_root, '--seed', 3, *study_slice, env=dict(OMP_NUM_THREADS=1), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    report, summary = out / 'report' / 'report.md', out / 'report' / 'summary.json'
    assert f'[study] report: {report}' in lines and f'[study] summary: {summary}' in lines
    assert f'[study] EDFs: {out / "report" / "edf.png"}' in lines
    assert (out / 'report' / 'edf.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    verdicts = [line for line in lines if 'regnetx' in line and 'anynetx_a' in line and
                'KS' in line and 'permutation p' in line]
    assert len(verdicts) == 1
    numbers = json.loads(summary.read_text())
    assert [s['name'] for s in numbers['studies']] == ['regnetx', 'anynetx_a']
    regnetx = json.loads((out / 'regnetx' / 'study.json').read_text())
    assert regnetx['seed'] == 3 and regnetx['repeats'] == 1 and len(regnetx['trials']) == 3
    statuses = [json.loads((p / 'status.json').read_text())['status']
                for space in ('regnetx', 'anynetx_a') for p in (out / space / 'trials').iterdir()]
    assert statuses == ['done'] * 5
