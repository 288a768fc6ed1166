"""One training attempt of one trial: ``tools/train.py`` in a subprocess, judged the one way.

:func:`train_attempt` is what every executor runs for an :class:`Attempt` (a pool thread, a
SLURM job through submitit; the study workers of :mod:`.workers` run ``tools/train.py``
in-process instead and fall back to it for two-stage trials). It runs
``python tools/train.py CONFIG --work-dir DIR [--resume]``: a crash, an OOM or a divergence in
one trial never stops the study, and the tail of its stderr becomes the trial's error.
:func:`judge` turns a finished run into an outcome (no metric or a non-finite loss fail a clean
exit), for the subprocesses here and for the workers alike.

A two-stage trial runs its stages in one attempt (classification pretraining, conversion with
:func:`regnet_backbone.checkpoints.convert_file`, fine-tuning); each finished stage is recorded
in ``stages.json``, so a later attempt continues at the first unfinished one, and a failure
names its stage.
"""
import contextlib
import math
import os
import os.path as osp
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

from ..runtime.logs import metric_values, read_scalars, tail
from .layout import (LAST_CHECKPOINT, STAGES_FILE, _has_checkpoint, _last_checkpoint,
                     _pretrain_result, _read_json, _write_json, train_command)


@dataclass
class Attempt:
    """One training attempt of one trial: what a pool thread or a SLURM job runs."""
    study: str
    trial: str
    number: int
    config: str
    work_dir: str
    train_tool: str
    python: str
    launcher: str = 'none'
    threads: Optional[int] = None
    cwd: Optional[str] = None
    metric: Optional[str] = None
    # Two-stage trials: the classification config and work dir (stage 1), the converted
    # backbone it becomes (stage 2, what ``config`` fine-tunes from) and the metric of stage 1.
    pretrain_config: Optional[str] = None
    pretrain_work_dir: Optional[str] = None
    pretrained: Optional[str] = None
    pretrain_metric: Optional[str] = None


_ATTEMPT = object()  # judge(): the attempt's own work dir / metric


def judge(attempt: Attempt, returncode: Optional[int], error: Optional[str], wall: float,
          resumed: bool, *, work_dir=_ATTEMPT, metric=_ATTEMPT, rank: int = 0) -> dict:
    """The outcome of one ``tools/train.py`` run, whether a subprocess or a study worker ran
    it: a clean exit (``returncode`` 0) still fails without a validation metric (``metric``,
    when given, must be among the logged ones) or with a non-finite final loss.

    Args:
        error: why the run failed (the tail of its stderr), None for a clean exit.
        wall: seconds the run took.
        work_dir, metric: the run's work dir and the metric it must log (default: the
            attempt's; a two-stage trial's pretraining passes its own).

    Returns:
        ``dict(ok, returncode, wall_time, error, resumed, metrics, rank)``.
    """
    work_dir = attempt.work_dir if work_dir is _ATTEMPT else work_dir
    metric = attempt.metric if metric is _ATTEMPT else metric
    metrics = {}
    if returncode == 0:
        train, val = read_scalars(work_dir)
        losses = [r['loss'] for r in train if isinstance(r.get('loss'), (int, float))]
        if losses and not math.isfinite(losses[-1]):
            error = f'diverged: the training loss is {losses[-1]} at the end'
        elif not val:
            error = 'training ended without a validation (no metric was logged)'
        else:
            metrics = metric_values(val[-1])
            if metric and metric not in metrics:
                error = (f'the validation logged no {metric!r} (it logged '
                         f'{", ".join(sorted(metrics)) or "nothing"})')
    return dict(ok=error is None, returncode=returncode, wall_time=wall, error=error,
                resumed=resumed, metrics=metrics, rank=rank)


def output_files(attempt: Attempt, config: str, rank: int = 0) -> tuple:
    """``(out, err)``: the files an attempt's stdout and stderr go to, ``attempt-K.out`` /
    ``.err`` beside ``config`` (``attempt-K.rankR.*`` for task R > 0 of a multi-GPU job)."""
    stem = f'attempt-{attempt.number}' + (f'.rank{rank}' if rank else '')
    folder = osp.dirname(config)
    return osp.join(folder, stem + '.out'), osp.join(folder, stem + '.err')


def train_argv(config: str, work_dir: str, launcher: str, resumed: bool) -> list:
    """The arguments of ``tools/train.py`` for one attempt (``--resume`` when it resumes)."""
    return [config, '--work-dir', work_dir, '--launcher', launcher] + \
        (['--resume'] if resumed else [])


def _job_rank() -> int:
    with contextlib.suppress(ImportError, RuntimeError, KeyError):
        import submitit
        return submitit.JobEnvironment().global_rank
    return 0


def train_attempt(attempt: Attempt) -> dict:
    """Run one training attempt of one trial (resuming when its work dir holds a checkpoint)
    and report how it went. Never raises for a training failure.

    A two-stage trial (``attempt.pretrain_config`` set) runs its unfinished stages in order:
    see :func:`_two_stage_attempt`.

    Returns:
        ``dict(ok, returncode, wall_time, error, resumed, metrics, rank)``; ``error`` is the
        tail of the attempt's stderr (or why a clean exit still counts as a failure: no
        validation metric, a non-finite loss). Two-stage trials add ``stage`` (the stage that
        failed, or None) and ``pretrain`` (``{'top1', 'error'}`` in percent, once known).
    """
    if attempt.pretrain_config:
        return _two_stage_attempt(attempt)
    return _train_stage(attempt, attempt.config, attempt.work_dir, attempt.metric)


def _train_stage(attempt: Attempt, config: str, work_dir: str, metric: Optional[str]) -> dict:
    """``tools/train.py CONFIG --work-dir WORK_DIR [--resume]`` once, its stdout / stderr in
    ``attempt-K.out`` / ``.err`` beside ``config``; what :func:`train_attempt` returns."""
    rank = _job_rank()  # > 0: another task of a multi-GPU SLURM job
    out, err = output_files(attempt, config, rank)
    resumed = _has_checkpoint(work_dir)
    cmd = train_command(attempt.python, attempt.train_tool) + train_argv(config, work_dir, attempt.launcher,
                                                            resumed)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('PYTHONWARNINGS', 'ignore')
    if attempt.threads:
        env.update(OMP_NUM_THREADS=str(attempt.threads), MKL_NUM_THREADS=str(attempt.threads))
    if attempt.launcher == 'slurm' and 'MASTER_PORT' not in env:
        # Jobs sharing a node must not share mmengine's default port 29500.
        env['MASTER_PORT'] = str(20000 + int(env.get('SLURM_JOB_ID', '0')) % 20000)
    start = time.time()
    try:
        with open(out, 'w') as fo, open(err, 'w') as fe:
            returncode = subprocess.run(cmd, stdout=fo, stderr=fe, env=env,
                                        cwd=attempt.cwd).returncode
    except OSError as e:
        returncode, error = -1, f'cannot start {attempt.train_tool}: {e}'
    else:
        error = None if returncode == 0 else (tail(err) or f'train.py exited {returncode}')
    return judge(attempt, returncode, error, time.time() - start, resumed, work_dir=work_dir,
                 metric=metric, rank=rank)


def _two_stage_attempt(attempt: Attempt) -> dict:
    """The unfinished stages of a two-stage trial, in order, in one attempt:

    1. ``pretrain``: ``tools/train.py`` on the classification config (resumed from its last
       checkpoint when there is one); done once it validated.
    2. ``convert``: its last checkpoint -> ``attempt.pretrained`` with
       :func:`regnet_backbone.checkpoints.convert_file` (which keeps the classifier's top-1 in
       the file's meta).
    3. ``finetune``: ``tools/train.py`` on the trial config, whose backbone ``init_cfg`` loads
       that file (resumed when its work dir holds a checkpoint).

    Stages 1 and 2 are recorded in ``stages.json`` when done, so the next attempt (a retry, a
    rerun of ``run``) starts at the first unfinished stage. Returns what :func:`train_attempt`
    documents; ``wall_time`` sums the stages run by this attempt.
    """
    folder = osp.dirname(attempt.config)
    stages_path = osp.join(folder, STAGES_FILE)
    stages = _read_json(stages_path) if osp.isfile(stages_path) else {}
    wall = 0.0

    def failed(stage, outcome):
        return dict(outcome, ok=False, wall_time=wall, stage=stage,
                    pretrain=_pretrain_result((stages.get('pretrain') or {}).get('top1')))

    if (stages.get('pretrain') or {}).get('status') != 'done':
        outcome = _train_stage(attempt, attempt.pretrain_config, attempt.pretrain_work_dir,
                               attempt.pretrain_metric)
        wall += outcome['wall_time'] or 0.0
        checkpoint = _last_checkpoint(attempt.pretrain_work_dir)
        if outcome['ok'] and checkpoint is None:
            outcome = dict(outcome, ok=False, error='pretraining wrote no checkpoint '
                           f'({LAST_CHECKPOINT} missing in {attempt.pretrain_work_dir})')
        if not outcome['ok']:
            return failed('pretrain', outcome)
        stages['pretrain'] = dict(status='done', top1=outcome['metrics'].get(
            attempt.pretrain_metric), metric=attempt.pretrain_metric, checkpoint=checkpoint,
            wall_time=round(outcome['wall_time'], 1))
        _write_json(stages_path, stages)
    if (stages.get('convert') or {}).get('status') != 'done' or \
            not osp.isfile(attempt.pretrained):
        start = time.time()
        error = None
        try:
            from ..checkpoints import convert_file
            report = convert_file(stages['pretrain']['checkpoint'], attempt.pretrained,
                                  force=True)
        except Exception as e:  # the converter's refusal is this trial's failure, not the study's
            error = f'{type(e).__name__}: {e}'
        else:
            if report.nonfinite:
                error = (f'the pretrained backbone holds NaN or Inf in {len(report.nonfinite)} '
                         f'tensors (e.g. {report.nonfinite[0]})')
        wall += time.time() - start
        if error:
            return failed('convert', dict(returncode=None, error=error, resumed=False,
                                          metrics={}, rank=_job_rank()))
        stages['convert'] = dict(status='done', file=attempt.pretrained,
                                 source=stages['pretrain']['checkpoint'],
                                 tensors=report.num_tensors)
        _write_json(stages_path, stages)
    outcome = _train_stage(attempt, attempt.config, attempt.work_dir, attempt.metric)
    wall += outcome['wall_time'] or 0.0
    return dict(outcome, wall_time=wall, stage=None if outcome['ok'] else 'finetune',
                pretrain=_pretrain_result(stages['pretrain'].get('top1')))
