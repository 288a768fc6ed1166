"""One training attempt of one trial, run in this process, and :func:`judge`, the one check of a
finished run.

:func:`train_attempt` is what every executor runs for an :class:`Attempt`: a long-lived local
worker process, attempt after attempt, or a SLURM job (:mod:`.executors`). It calls the train
CLI's ``main(argv)`` (:data:`.layout.DEFAULT_TRAIN_TOOL`: ``CONFIG --work-dir DIR [--resume]``)
in-process, so every attempt goes through the engine code of ``python -m
regnet_backbone.runtime.train`` (config loading, strict loading, crash-safe checkpoints, the
work-dir lock, one-line errors) without paying its imports again. Per attempt:

* its stdout and stderr go to ``attempt-K.out`` / ``.err`` beside its config (file descriptors
  1 and 2 are redirected, so output from C code and a fatal signal's traceback land there too);
* a failure (an exception, a user error, a non-finite loss, no metric) is a failed outcome with
  the tail of its stderr, never an exception; a crash of the process is the executor's to report;
* what a Runner leaves in mmengine's registries of named instances (loggers and their open log
  files, message hubs, visualizers) is dropped afterwards.

A two-stage trial runs its stages in one attempt (classification pretraining, conversion with
:func:`regnet_backbone.checkpoints.convert_file`, fine-tuning); each finished stage is recorded
in ``stages.json``, so a later attempt continues at the first unfinished one, and a failure
names its stage.
"""
import contextlib
import functools
import gc
import importlib
import importlib.util
import math
import os
import os.path as osp
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from ..runtime.hooks.atomic_checkpoint import LAST_CHECKPOINT, last_complete_checkpoint
from ..runtime.logs import metric_values, read_scalars, tail
from .layout import STAGES_FILE, pretrain_result, read_json, write_json


@dataclass
class Attempt:
    """One training attempt of one trial: what a local worker or a SLURM job runs."""
    study: str
    trial: str
    number: int
    config: str
    work_dir: str
    train_tool: str
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
    """The outcome of one run of the train CLI: a clean exit (``returncode`` 0) still fails
    without a validation metric (``metric``, when given, must be among the logged ones) or with
    a non-finite final loss.

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


def _job_rank() -> int:
    with contextlib.suppress(ImportError, RuntimeError, KeyError):
        import submitit
        return submitit.JobEnvironment().global_rank
    return 0


# --- the train CLI in this process ----------------------------------------------------------------
@contextlib.contextmanager
def _output_to(out: str, err: str):
    """File descriptors 1 and 2 (and so ``sys.stdout`` / ``sys.stderr``) into ``out`` /
    ``err``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(out, 'w') as fo, open(err, 'w') as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _named_instances() -> Dict[type, set]:
    """The names held by each of mmengine's ``ManagerMixin`` registries of instances."""
    from mmengine.utils import ManagerMixin
    found, todo = {}, [ManagerMixin]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        held = getattr(cls, '_instance_dict', None)
        if isinstance(held, dict):
            found[cls] = set(held)
    return found


def _forget_instances(before: Dict[type, set]) -> None:
    """Drop the named instances (loggers, message hubs, visualizers) made since ``before``,
    closing the loggers' files."""
    import logging
    for cls, names in _named_instances().items():
        held = cls._instance_dict
        for name in [n for n in list(held) if n not in before.get(cls, set())]:
            instance = held.pop(name, None)
            if isinstance(instance, logging.Logger):
                for handler in list(instance.handlers):
                    instance.removeHandler(handler)
                    with contextlib.suppress(Exception):
                        handler.close()


@functools.lru_cache(maxsize=None)
def _train_cli(tool: str):
    """The train CLI ``tool`` (a module name or a ``.py`` file with ``main(argv)``), imported
    once per process."""
    if not tool.endswith('.py'):
        return importlib.import_module(tool)
    spec = importlib.util.spec_from_file_location(f'_study_train_tool_{abs(hash(tool))}', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_train_cli(tool: str, argv: Sequence[str], out: str, err: str) -> int:
    """``main(argv)`` of the train CLI ``tool`` in this process, with its output in ``out`` /
    ``err``; returns its exit status. An exception is status 1 with its traceback in ``err``,
    as an uncaught one in a subprocess would be."""
    before = _named_instances()
    with _output_to(out, err):
        try:
            return _train_cli(tool).main(list(argv)) or 0
        except SystemExit as e:  # argparse, or a CLI that exits
            if e.code is None or isinstance(e.code, int):
                return e.code or 0
            print(e.code, file=sys.stderr)
            return 1
        except Exception:  # noqa: B902 - the attempt fails; the process goes on
            traceback.print_exc()
            return 1
        finally:
            _forget_instances(before)
            gc.collect()


# --- attempts -------------------------------------------------------------------------------------
def train_attempt(attempt: Attempt) -> dict:
    """Run one training attempt of one trial in this process (resuming when its work dir holds
    a checkpoint) and report how it went. Never raises for a training failure. It sets this
    process's working directory and thread count (``attempt.cwd``, ``attempt.threads``): it is
    meant for a worker or a job process.

    A two-stage trial (``attempt.pretrain_config`` set) runs its unfinished stages in order:
    see :func:`_two_stage_attempt`.

    Returns:
        ``dict(ok, returncode, wall_time, error, resumed, metrics, rank)``; ``error`` is the
        tail of the attempt's stderr (or why a clean exit still counts as a failure: no
        validation metric, a non-finite loss). Two-stage trials add ``stage`` (the stage that
        failed, or None) and ``pretrain`` (``{'top1', 'error'}`` in percent, once known).
    """
    if attempt.cwd:
        os.chdir(attempt.cwd)
    if attempt.threads:
        import torch
        os.environ.update(OMP_NUM_THREADS=str(attempt.threads),
                          MKL_NUM_THREADS=str(attempt.threads))
        torch.set_num_threads(attempt.threads)
    if attempt.launcher == 'slurm':
        # Jobs sharing a node must not share mmengine's default port 29500.
        os.environ.setdefault('MASTER_PORT',
                              str(20000 + int(os.environ.get('SLURM_JOB_ID', '0')) % 20000))
    if attempt.pretrain_config:
        return _two_stage_attempt(attempt)
    return _train_stage(attempt, attempt.config, attempt.work_dir, attempt.metric)


def _train_stage(attempt: Attempt, config: str, work_dir: str, metric: Optional[str]) -> dict:
    """The train CLI on ``CONFIG --work-dir WORK_DIR [--resume]`` once, its stdout / stderr in
    ``attempt-K.out`` / ``.err`` beside ``config``; what :func:`train_attempt` returns."""
    rank = _job_rank()  # > 0: another task of a multi-GPU SLURM job
    out, err = output_files(attempt, config, rank)
    resumed = last_complete_checkpoint(work_dir) is not None
    argv = [config, '--work-dir', work_dir, '--launcher', attempt.launcher] + \
        (['--resume'] if resumed else [])
    start = time.time()
    returncode = run_train_cli(attempt.train_tool, argv, out, err)
    error = None if returncode == 0 else (tail(err) or
                                          f'{attempt.train_tool} exited {returncode}')
    return judge(attempt, returncode, error, time.time() - start, resumed, work_dir=work_dir,
                 metric=metric, rank=rank)


def _two_stage_attempt(attempt: Attempt) -> dict:
    """The unfinished stages of a two-stage trial, in order, in one attempt:

    1. ``pretrain``: the train CLI on the classification config (resumed from its last
       checkpoint when there is one); done once it validated.
    2. ``convert``: its last checkpoint -> ``attempt.pretrained`` with
       :func:`regnet_backbone.checkpoints.convert_file` (which keeps the classifier's top-1 in
       the file's meta).
    3. ``finetune``: the train CLI on the trial config, whose backbone ``init_cfg`` loads
       that file (resumed when its work dir holds a checkpoint).

    Stages 1 and 2 are recorded in ``stages.json`` when done, so the next attempt (a retry, a
    rerun of ``run``) starts at the first unfinished stage. Returns what :func:`train_attempt`
    documents; ``wall_time`` sums the stages run by this attempt.
    """
    folder = osp.dirname(attempt.config)
    stages_path = osp.join(folder, STAGES_FILE)
    stages = read_json(stages_path) if osp.isfile(stages_path) else {}
    wall = 0.0

    def failed(stage, outcome):
        return dict(outcome, ok=False, wall_time=wall, stage=stage,
                    pretrain=pretrain_result((stages.get('pretrain') or {}).get('top1')))

    if (stages.get('pretrain') or {}).get('status') != 'done':
        outcome = _train_stage(attempt, attempt.pretrain_config, attempt.pretrain_work_dir,
                               attempt.pretrain_metric)
        wall += outcome['wall_time'] or 0.0
        checkpoint = last_complete_checkpoint(attempt.pretrain_work_dir)
        if outcome['ok'] and checkpoint is None:
            outcome = dict(outcome, ok=False, error='pretraining wrote no checkpoint '
                           f'({LAST_CHECKPOINT} missing in {attempt.pretrain_work_dir})')
        if not outcome['ok']:
            return failed('pretrain', outcome)
        stages['pretrain'] = dict(status='done', top1=outcome['metrics'].get(
            attempt.pretrain_metric), metric=attempt.pretrain_metric, checkpoint=checkpoint,
            wall_time=round(outcome['wall_time'], 1))
        write_json(stages_path, stages)
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
        write_json(stages_path, stages)
    outcome = _train_stage(attempt, attempt.config, attempt.work_dir, attempt.metric)
    wall += outcome['wall_time'] or 0.0
    return dict(outcome, wall_time=wall, stage=None if outcome['ok'] else 'finetune',
                pretrain=pretrain_result(stages['pretrain'].get('top1')))
