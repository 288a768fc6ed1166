"""Long-lived study workers (regnet_backbone.study.workers), CI-sized.

A stand-in for ``tools/train.py`` (a ``main(argv)`` that does what its config file says) shows
what the backend promises without the cost of training:

* attempts run one after another in the same worker process (the point: one start-up);
* each attempt's stdout / stderr, Python's and the raw file descriptors', land in its own
  ``attempt-K.out`` / ``.err``;
* an exception, a user error, a segfault, ``os._exit`` or SIGKILL fails only that attempt, with
  the tail of its stderr and how the worker ended; a crashed worker is replaced;
* outcomes are judged as for a subprocess (metrics read back, no metric = failure);
* ``close`` stops the worker processes.

One attempt with the real ``tools/train.py`` and the Fashion-MNIST recipe (a few iterations on a
slice) checks that two real trials in a row train in one worker.
"""
import os
import os.path as osp
import sys
import time

import pytest

from regnet_backbone.study.attempt import Attempt
from regnet_backbone.study.workers import WorkerBackend

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

FAKE_TRAIN = '''
import json, os, signal, sys, time


def main(argv):
    config, work_dir = argv[0], argv[argv.index('--work-dir') + 1]
    with open(config) as f:
        what = f.read().strip()
    os.makedirs(work_dir, exist_ok=True)
    with open(os.path.join(work_dir, 'pid'), 'w') as f:
        f.write(str(os.getpid()))
    print('python stdout of', what)
    sys.stdout.flush()
    os.write(1, b'raw fd 1\\n')
    os.write(2, b'raw fd 2\\n')
    if what == 'raise':
        raise RuntimeError('the model blew up')
    if what == 'user-error':
        print('error: a one-line user error', file=sys.stderr)
        return 1
    if what == 'segv':
        os.kill(os.getpid(), signal.SIGSEGV)
    if what == 'sigkill':
        os.kill(os.getpid(), signal.SIGKILL)
    if what == 'exit':
        os._exit(3)
    vis = os.path.join(work_dir, '20240101_000000', 'vis_data')
    os.makedirs(vis, exist_ok=True)
    with open(os.path.join(vis, 'scalars.json'), 'w') as f:
        f.write(json.dumps({'loss': 2.0, 'step': 1}) + '\\n')
        if what != 'no-metric':
            f.write(json.dumps({'accuracy/top1': 87.5, 'step': 1}) + '\\n')
    return 0
'''


@pytest.fixture
def fake_tool(tmp_path):
    path = tmp_path / 'fake_train.py'
    path.write_text(FAKE_TRAIN)
    return str(path)


def attempt(tmp_path, tool, name, what, number=1, metric='accuracy/top1'):
    folder = tmp_path / 'trials' / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'config.py').write_text(what)
    return Attempt(study=str(tmp_path), trial=name, number=number,
                   config=str(folder / 'config.py'), work_dir=str(folder / 'work'),
                   train_tool=tool, python=sys.executable, threads=1, cwd=str(tmp_path),
                   metric=metric)


def run_all(backend, attempts, timeout=120):
    handles = backend.submit(attempts)
    return [h.result(timeout=timeout) for h in handles]


def pid_of(a):
    with open(osp.join(a.work_dir, 'pid')) as f:
        return int(f.read())


def read(path):
    with open(path) as f:
        return f.read()


def test_attempts_share_one_worker_and_keep_their_own_output(tmp_path, fake_tool):
    attempts = [attempt(tmp_path, fake_tool, f't{i}', 'ok') for i in range(3)]
    backend = WorkerBackend(jobs=1)
    try:
        outcomes = run_all(backend, attempts)
    finally:
        backend.close()
    assert [o['ok'] for o in outcomes] == [True, True, True]
    assert all(o['metrics'] == {'accuracy/top1': 87.5} for o in outcomes)
    assert all(o['returncode'] == 0 and o['error'] is None for o in outcomes)
    pids = {pid_of(a) for a in attempts}
    assert len(pids) == 1 and pids != {os.getpid()}  # one process, not this one
    for a in attempts:
        folder = osp.dirname(a.config)
        assert read(osp.join(folder, 'attempt-1.out')) == 'python stdout of ok\nraw fd 1\n'
        assert read(osp.join(folder, 'attempt-1.err')) == 'raw fd 2\n'


@pytest.mark.parametrize('crash, ending', [
    ('segv', 'killed by signal 11 (SIGSEGV)'),
    ('sigkill', 'killed by signal 9 (SIGKILL)'),
    ('exit', 'exit status 3'),
])
def test_a_crash_fails_only_its_attempt_and_the_worker_is_replaced(tmp_path, fake_tool, crash,
                                                                    ending):
    attempts = [attempt(tmp_path, fake_tool, 'before', 'ok'),
                attempt(tmp_path, fake_tool, 'crash', crash),
                attempt(tmp_path, fake_tool, 'after', 'ok')]
    backend = WorkerBackend(jobs=1)
    try:
        outcomes = run_all(backend, attempts)
    finally:
        backend.close()
    assert [o['ok'] for o in outcomes] == [True, False, True]
    error = outcomes[1]['error']
    assert error.splitlines()[-1].endswith(ending), error
    assert 'raw fd 2' in error  # the tail of the crashed attempt's stderr comes first
    if crash == 'segv':  # faulthandler wrote the Python traceback into the attempt's stderr
        assert 'Fatal Python error: Segmentation fault' in read(
            osp.join(osp.dirname(attempts[1].config), 'attempt-1.err'))
    assert pid_of(attempts[0]) == pid_of(attempts[1]) != pid_of(attempts[2])


def test_exceptions_and_user_errors_fail_the_attempt_not_the_worker(tmp_path, fake_tool):
    attempts = [attempt(tmp_path, fake_tool, 'raise', 'raise'),
                attempt(tmp_path, fake_tool, 'user', 'user-error'),
                attempt(tmp_path, fake_tool, 'nometric', 'no-metric'),
                attempt(tmp_path, fake_tool, 'ok', 'ok')]
    backend = WorkerBackend(jobs=1)
    try:
        raised, user, no_metric, ok = run_all(backend, attempts)
    finally:
        backend.close()
    assert not raised['ok'] and raised['returncode'] == 1
    assert raised['error'].splitlines()[-1] == 'RuntimeError: the model blew up'
    assert 'Traceback (most recent call last)' in raised['error']
    assert not user['ok'] and user['error'].splitlines()[-1] == 'error: a one-line user error'
    assert not no_metric['ok'] and no_metric['returncode'] == 0
    assert no_metric['error'] == 'training ended without a validation (no metric was logged)'
    assert ok['ok']
    assert len({pid_of(a) for a in attempts}) == 1


def test_two_slots_run_in_two_workers_at_once_and_close_stops_them(tmp_path, fake_tool):
    attempts = [attempt(tmp_path, fake_tool, f't{i}', 'ok') for i in range(4)]
    backend = WorkerBackend(jobs=2)
    try:
        outcomes = run_all(backend, attempts)
        workers = list(backend._all)
    finally:
        backend.close()
    assert all(o['ok'] for o in outcomes)
    assert len(workers) <= 2 and len({pid_of(a) for a in attempts}) <= 2
    deadline = time.time() + 10
    while time.time() < deadline and any(w.proc.poll() is None for w in workers):
        time.sleep(0.1)
    assert all(w.proc.poll() is not None for w in workers)


def test_a_worker_is_replaced_after_max_trials(tmp_path, fake_tool):
    attempts = [attempt(tmp_path, fake_tool, f't{i}', 'ok') for i in range(3)]
    backend = WorkerBackend(jobs=1, max_trials_per_worker=2)
    try:
        run_all(backend, attempts)
    finally:
        backend.close()
    pids = [pid_of(a) for a in attempts]
    assert pids[0] == pids[1] != pids[2]
