"""Where study attempts run (regnet_backbone.study.executors), CI-sized.

A stand-in for the train CLI (a ``main(argv)`` that does what its config file says) shows what
the local executor promises without the cost of training:

* attempts run one after another in the same long-lived worker process (the point: one
  start-up), not in this one;
* each attempt's stdout / stderr, Python's and the raw file descriptors', land in its own
  ``attempt-K.out`` / ``.err``;
* an exception, a user error, a segfault, ``os._exit`` or SIGKILL fails only that attempt, with
  the tail of its stderr and how the worker ended; a crashed worker is replaced;
* outcomes are judged the one way (metrics read back, no metric = failure);
* ``close`` stops the worker processes;
* the SLURM path (submitit, here its local cluster) runs the same attempt code in a job.

Ctrl-C of ``tools/study.py run`` and the same command resuming: tests/test_study.py.
"""
import os
import os.path as osp
import time

import pytest

from regnet_backbone.study import executors
from regnet_backbone.study.attempt import Attempt
from regnet_backbone.study.executors import LocalBackend, SlurmOptions, SubmititBackend

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
    if what.startswith('sleep'):
        time.sleep(float(what.split()[1]))
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
                   train_tool=tool, threads=1, cwd=str(tmp_path), metric=metric)


def run_all(backend, attempts, timeout=180):
    handles = backend.submit(attempts)
    return [h.result(timeout=timeout) for h in handles]


def pid_of(a):
    with open(osp.join(a.work_dir, 'pid')) as f:
        return int(f.read())


def read(path):
    with open(path) as f:
        return f.read()


def gone(pid, wait=10.0) -> bool:
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def run_on_one_worker(attempts):
    backend = LocalBackend(jobs=1)
    try:
        return run_all(backend, attempts)
    finally:
        backend.close()


def test_attempts_share_one_worker_and_keep_their_own_output(tmp_path, fake_tool):
    attempts = [attempt(tmp_path, fake_tool, f't{i}', 'ok') for i in range(3)]
    outcomes = run_on_one_worker(attempts)
    assert [o['ok'] for o in outcomes] == [True, True, True]
    assert all(o['metrics'] == {'accuracy/top1': 87.5} for o in outcomes)
    assert all(o['returncode'] == 0 and o['error'] is None for o in outcomes)
    pids = {pid_of(a) for a in attempts}
    assert len(pids) == 1 and pids != {os.getpid()}  # one process, not this one
    for a in attempts:
        folder = osp.dirname(a.config)
        assert read(osp.join(folder, 'attempt-1.out')) == 'python stdout of ok\nraw fd 1\n'
        assert read(osp.join(folder, 'attempt-1.err')) == 'raw fd 2\n'
    assert gone(pids.pop())  # close() stopped the worker


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
    outcomes = run_on_one_worker(attempts)
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
    raised, user, no_metric, ok = run_on_one_worker(attempts)
    assert not raised['ok'] and raised['returncode'] == 1
    assert raised['error'].splitlines()[-1] == 'RuntimeError: the model blew up'
    assert 'Traceback (most recent call last)' in raised['error']
    assert not user['ok'] and user['error'].splitlines()[-1] == 'error: a one-line user error'
    assert not no_metric['ok'] and no_metric['returncode'] == 0
    assert no_metric['error'] == 'training ended without a validation (no metric was logged)'
    assert ok['ok']
    assert len({pid_of(a) for a in attempts}) == 1


def test_two_slots_train_in_two_workers_at_once_and_close_stops_them(tmp_path, fake_tool):
    # Each attempt sleeps 3 s: one worker alone would need 12 s for the four.
    attempts = [attempt(tmp_path, fake_tool, f't{i}', 'sleep 3') for i in range(4)]
    backend = LocalBackend(jobs=2)
    try:
        run_all(backend, attempts[:1])  # both workers are up (they start together)
        start = time.time()
        outcomes = run_all(backend, attempts)
        took = time.time() - start
    finally:
        backend.close()
    assert all(o['ok'] for o in outcomes)
    pids = {pid_of(a) for a in attempts}
    assert len(pids) == 2 and took < 11, (pids, took)
    assert all(gone(pid) for pid in pids)


def test_the_slurm_path_runs_the_same_attempt_in_a_submitit_job(tmp_path, fake_tool):
    """submitit's local cluster: the code path of --executor slurm, one job per attempt."""
    attempts = [attempt(tmp_path, fake_tool, 'ok', 'ok'),
                attempt(tmp_path, fake_tool, 'user', 'user-error')]
    backend = SubmititBackend(str(tmp_path / 'submitit'), 2, SlurmOptions(), threads=1,
                              cluster='local')
    jobs = backend.submit(attempts)
    deadline = time.time() + 180
    while not all(job.done() for job in jobs) and time.time() < deadline:
        time.sleep(0.5)
    ok, user = (executors.outcome(job) for job in jobs)
    assert ok['ok'] and ok['metrics'] == {'accuracy/top1': 87.5}
    assert not user['ok'] and user['error'].splitlines()[-1] == 'error: a one-line user error'
    assert pid_of(attempts[0]) != pid_of(attempts[1])  # one job each
    assert read(osp.join(osp.dirname(attempts[0].config), 'attempt-1.out')).endswith(
        'python stdout of ok\nraw fd 1\n')
