"""The run stage: train every unfinished trial of one or more studies, with retries.

:func:`run` holds each study's lock (:class:`StudyLock`: one ``tools/study.py run`` per study),
hands the attempts of the unfinished trials to an executor (:mod:`.executors`), retries a failed
attempt (each retry resumes from the trial's last checkpoint) and writes ``status.json`` once a
trial is done or has failed all its attempts; a failed trial never stops the study. It yields a
:class:`Progress` event at each change, which ``tools/study.py`` prints.
"""
import datetime
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from ..runtime.lock import WorkDirLock
from .attempt import Attempt
from .executors import EXECUTORS, POLL_S, SlurmOptions, make_backend, outcome
from .layout import (DEFAULT_TRAIN_TOOL, PRETRAIN_DIR, PRETRAINED_FILE, STATUS_FILE,
                     TRIAL_CONFIG, TRIAL_WORK, StudyError, load_study, pending_stage,
                     read_status, trial_dir, write_json)

#: The lock file of a study's run (``WORK_DIR/.run.lock``).
RUN_LOCK = '.run.lock'


@dataclass
class Progress:
    """A change in a :func:`run`: ``kind`` is ``start``, ``done``, ``failed`` (for good),
    ``retry`` (an attempt failed; another follows) or ``skip`` (finished earlier).

    ``done``, ``failed``, ``running`` and ``pending`` count the trials of every study in the run
    after the change; ``eta_s`` is the estimated time left in seconds (None until a trial
    finished); ``error`` the last lines of a failed attempt's stderr; ``metric`` the trial's
    final value of the study's metric, when known; ``stage`` the stage of a two-stage trial
    that failed (``pretrain``, ``convert`` or ``finetune``).
    """
    kind: str
    study: str
    trial: str
    done: int
    failed: int
    running: int
    pending: int
    eta_s: Optional[float] = None
    wall_time: Optional[float] = None
    attempt: int = 0
    error: Optional[str] = None
    metric: Optional[Tuple[str, float]] = None
    stage: Optional[str] = None

    def __str__(self) -> str:
        """One progress line: what changed, then the counts and the ETA."""
        where = f'{self.study}/{self.trial}'
        if self.kind == 'skip':
            what = f'{where} {"finished" if self.error is None else "failed"} earlier: skipped'
        elif self.kind == 'start':
            what = f'{where} started' + (f' (attempt {self.attempt})' if self.attempt > 1 else '')
        elif self.kind == 'done':
            metric = f' ({self.metric[0]} {self.metric[1]:.4g})' if self.metric else ''
            what = f'{where} done in {minutes(self.wall_time)}{metric}'
        else:
            last = (self.error or '').strip().splitlines()
            last = last[-1] if last else 'unknown error'
            stage = f' in stage {self.stage}' if self.stage else ''
            what = (f'{where} attempt {self.attempt} failed{stage}, retrying: {last}'
                    if self.kind == 'retry' else f'{where} FAILED{stage}: {last}')
        eta = f' | ETA {minutes(self.eta_s)}' if self.eta_s is not None else ''
        return (f'{what} | {self.done} done, {self.failed} failed, {self.running} running, '
                f'{self.pending} queued{eta}')


def minutes(seconds: Optional[float]) -> str:
    """``12.3 min`` (``?`` for None)."""
    return f'{seconds / 60:.1f} min' if seconds is not None else '?'


class StudyLock(WorkDirLock):
    """``WORK_DIR/.run.lock``, held for a whole :func:`run`: two runs of one study would train
    its trials twice. It is the lock of a training work dir
    (:class:`regnet_backbone.runtime.lock.WorkDirLock`: an ``flock``, dropped by the kernel
    however the holder ends), on another file and with a :class:`StudyError` for a live
    holder."""

    def __init__(self, work_dir: str):
        super().__init__(work_dir, 'tools/study.py run')
        self.path = osp.join(work_dir, RUN_LOCK)

    def _refuse(self, info: dict):
        raise StudyError(f'another `tools/study.py run` is running on {self.work_dir}')


def _lock(work_dir: str) -> StudyLock:
    """The acquired :class:`StudyLock` of ``work_dir``."""
    return StudyLock(work_dir).acquire()


def run(work_dirs, *, jobs: int = 1, retries: int = 0, executor: str = 'local',
        retry_failed: bool = False, threads: Optional[int] = None,
        slurm: Optional[SlurmOptions] = None, train_tool: str = DEFAULT_TRAIN_TOOL,
        poll_s: Optional[float] = None) -> Iterator[Progress]:
    """Train every unfinished trial of one or more studies; yields :class:`Progress` events.

    Args:
        work_dirs: a study folder, or several (their trials share the ``jobs`` slots).
        jobs: trials trained at once (``local``: worker processes on this machine; ``slurm``:
            the job array's parallelism).
        retries: extra attempts for a trial whose attempt failed; each resumes from the trial's
            last checkpoint when there is one.
        executor: ``local`` (``jobs`` long-lived worker processes that train trial after
            trial) or ``slurm`` (a job array through submitit, one job per attempt); see
            :mod:`.executors`.
        retry_failed: also train trials that failed in an earlier run (they are skipped
            otherwise).
        threads: ``OMP_NUM_THREADS`` per trial (default for ``local``: the CPU count divided
            by ``jobs``).
        slurm: what each SLURM job asks for.
        train_tool: what trains a trial: a module or a ``.py`` file with ``main(argv)``, the
            train CLI's (:data:`.layout.DEFAULT_TRAIN_TOOL`).

    Finished trials are skipped; a trial that failed all its ``1 + retries`` attempts is
    recorded as failed (``status.json``) and the study goes on.
    """
    if isinstance(work_dirs, (str, os.PathLike)):
        work_dirs = [work_dirs]
    work_dirs = [osp.abspath(w) for w in work_dirs]
    if executor not in EXECUTORS:
        raise StudyError(f'--executor must be one of {", ".join(EXECUTORS)}, got {executor!r}')
    if jobs < 1 or retries < 0:
        raise StudyError(f'--jobs must be >= 1 and --retries >= 0, got {jobs} and {retries}')
    if train_tool.endswith('.py'):
        if not osp.isfile(train_tool):
            raise StudyError(f'{train_tool} not found; pass an existing train script.')
        train_tool = osp.abspath(train_tool)
    slurm = slurm or SlurmOptions()
    if executor == 'local' and threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)

    studies = [(w, load_study(w)) for w in work_dirs]
    locks: List[StudyLock] = []
    try:
        for w in work_dirs:
            locks.append(_lock(w))
        launcher = 'slurm' if executor == 'slurm' and slurm.gpus_per_trial > 1 else 'none'
        todo, skipped = _attempts(studies, retry_failed, dict(
            train_tool=train_tool, launcher=launcher,
            threads=threads, cwd=os.getcwd()))
        yield from _train(studies, todo, skipped, jobs, retries, executor, slurm, threads,
                          poll_s or POLL_S.get(executor, 1.0))
    finally:
        for lock in locks:
            lock.release()


def _attempts(studies, retry_failed: bool, common: dict) -> tuple:
    """``(todo, skipped)``: the first :class:`Attempt` of every trial to train (``number``
    0 until submitted, with the ``common`` fields), and ``(study name, trial, status)`` of the
    trials finished (or failed, without ``retry_failed``) earlier."""
    todo, skipped = [], []
    for w, study in studies:
        for t in study['trials']:
            status = read_status(w, t['trial'])
            if status and (status['status'] == 'done' or not retry_failed):
                skipped.append((study['name'], t['trial'], status))
                continue
            folder = trial_dir(w, t['trial'])
            two_stage = {}
            if study.get('init') == 'pretrain':
                two_stage = dict(
                    pretrain_config=osp.join(folder, PRETRAIN_DIR, TRIAL_CONFIG),
                    pretrain_work_dir=osp.join(folder, PRETRAIN_DIR, TRIAL_WORK),
                    pretrained=osp.join(folder, PRETRAINED_FILE),
                    pretrain_metric=study.get('pretrain_metric') or 'accuracy/top1')
            todo.append(Attempt(study=w, trial=t['trial'], number=0,
                                config=osp.join(folder, TRIAL_CONFIG),
                                work_dir=osp.join(folder, TRIAL_WORK), metric=study['metric'],
                                **common, **two_stage))
    return todo, skipped


def _final_status(attempt: Attempt, result: dict, attempts: int, wall: float) -> dict:
    """A trial's ``status.json``, written once its last attempt is judged."""
    status = dict(status='done' if result['ok'] else 'failed', attempts=attempts,
                  wall_time=round(wall, 1), error=result['error'],
                  returncode=result.get('returncode'), resumed=bool(result.get('resumed')),
                  finished=datetime.datetime.now(datetime.timezone.utc)
                  .isoformat(timespec='seconds'))
    if attempt.pretrain_config:
        stage = result.get('stage')
        if not result['ok'] and stage is None:  # the job died: where?
            stage = pending_stage(attempt.study, attempt.trial)
        status.update(stage=stage, pretrain=result.get('pretrain'))
    write_json(osp.join(trial_dir(attempt.study, attempt.trial), STATUS_FILE), status)
    return status


def _train(studies, todo: List[Attempt], skipped: list, jobs: int, retries: int, executor: str,
           slurm: SlurmOptions, threads: Optional[int], poll: float) -> Iterator[Progress]:
    """The loop of :func:`run`: submit, watch, judge, retry; the studies are locked."""
    counts = dict(done=0, failed=0)
    for _, _, status in skipped:
        counts[status['status']] += 1
    names = {w: study['name'] for w, study in studies}
    started: Dict[str, float] = {}
    durations: List[float] = []
    wall = {a.trial + a.study: 0.0 for a in todo}
    tried = {a.trial + a.study: 0 for a in todo}

    backend = None

    def event(kind, attempt, **kw) -> Progress:
        running = sum(1 for h in active if backend.running(h))
        pending = len(active) - running
        eta = None
        if durations:
            mean = sum(durations) / len(durations)
            now = time.time()
            left = pending * mean + sum(max(mean - (now - started[k]), 0.0)
                                        for k in started)
            eta = left / min(jobs, max(1, running + pending))
        return Progress(kind, names[attempt.study], attempt.trial, counts['done'],
                        counts['failed'], running, pending, eta, attempt=attempt.number, **kw)

    active: Dict[object, Attempt] = {}
    for study_name, trial, status in skipped:
        yield Progress('skip', study_name, trial, counts['done'], counts['failed'], 0,
                       len(todo), None, status.get('wall_time'), status.get('attempts', 0),
                       status.get('error'))
    if not todo:
        return
    try:
        backend = make_backend(executor, min(jobs, len(todo)), studies[0][0], slurm, threads)
        for attempt in todo:
            attempt.number = 1
        active.update(zip(backend.submit(todo), todo))
        while active:
            for handle, attempt in list(active.items()):
                key = attempt.trial + attempt.study
                if key not in started and (backend.running(handle) or handle.done()):
                    started[key] = time.time()
                    yield event('start', attempt)
                if not handle.done():
                    continue
                del active[handle]
                started.pop(key, None)
                result = outcome(handle)
                tried[key] += 1
                if result.get('wall_time'):
                    wall[key] += result['wall_time']
                metric = result.get('metrics', {}).get(attempt.metric)
                metric = (attempt.metric, metric) if metric is not None else None
                if result['ok'] or attempt.number > retries:
                    status = _final_status(attempt, result, tried[key], wall[key])
                    counts[status['status']] += 1
                    if result['ok']:
                        durations.append(wall[key])
                    yield event(status['status'], attempt, wall_time=wall[key],
                                error=result['error'], metric=metric,
                                stage=result.get('stage'))
                else:
                    yield event('retry', attempt, wall_time=result.get('wall_time'),
                                error=result['error'], stage=result.get('stage'))
                    retry = Attempt(**{**asdict(attempt), 'number': attempt.number + 1})
                    active.update(zip(backend.submit([retry]), [retry]))
            if active:
                time.sleep(poll)
    finally:
        if backend is not None:
            backend.close()
