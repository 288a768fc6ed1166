"""Where a study's attempts run: the executors behind ``tools/study.py run --executor``.

Each executor is a backend with ``submit(attempts) -> handles``, ``running(handle)`` and
``close()``; a handle has ``done()`` and ``result()`` (an outcome dict of
:func:`.attempt.train_attempt`). :func:`make_backend` picks one:

* ``local``: :class:`_LocalBackend`, a pool of threads, each waiting on its own
  ``tools/train.py`` process;
* ``workers``: :class:`.workers.WorkerBackend`, long-lived worker processes that run
  ``tools/train.py`` in-process, trial after trial;
* ``slurm``: :class:`_SubmititBackend`, a SLURM job array through ``submitit``, one job per
  attempt (:class:`SlurmOptions` says what each job asks for);
* ``submitit-local``: the same code path on this machine (submitit's local executor).
"""
import contextlib
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

from ..runtime.logs import ERROR_TAIL_LINES
from .attempt import Attempt, train_attempt
from .layout import StudyError
from .workers import WorkerBackend

EXECUTORS = ('local', 'workers', 'slurm', 'submitit-local')
#: Seconds between two looks at the running attempts, per executor.
POLL_S = {'local': 0.5, 'workers': 0.5, 'slurm': 30.0}


@dataclass
class SlurmOptions:
    """What each trial asks SLURM for (through submitit). ``gpus_per_trial`` > 1 runs
    ``tools/train.py --launcher slurm`` in that many tasks (one per GPU) under srun."""
    partition: Optional[str] = None
    gpus_per_trial: int = 1
    cpus_per_task: int = 8
    time_min: int = 240
    mem_gb: Optional[int] = None
    constraint: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)


class _LocalBackend:
    """Attempts in a pool of threads, each waiting on its own ``tools/train.py`` process."""

    def __init__(self, jobs: int):
        self.pool = ThreadPoolExecutor(max_workers=jobs)

    def submit(self, attempts: Sequence[Attempt]) -> list:
        return [self.pool.submit(train_attempt, a) for a in attempts]

    @staticmethod
    def running(handle) -> bool:
        return handle.running()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _SubmititBackend:
    """Attempts as a SLURM job array through submitit (``cluster='local'``: the same code path
    on this machine, each job a subprocess). SLURM runs at most ``jobs`` at once."""

    def __init__(self, folder: str, jobs: int, cluster: str, slurm: SlurmOptions,
                 threads: Optional[int]):
        try:
            import submitit
        except ImportError:
            raise StudyError('--executor slurm needs submitit (pip install submitit)') from None
        try:
            self.executor = submitit.AutoExecutor(folder=osp.join(folder, '%j'), cluster=cluster)
        except RuntimeError as e:  # no srun on this machine
            raise StudyError(f'--executor {cluster}: {e}') from None
        tasks = max(1, slurm.gpus_per_trial)
        params = dict(timeout_min=slurm.time_min, nodes=1, tasks_per_node=tasks,
                      cpus_per_task=threads or slurm.cpus_per_task, name='regnet-study')
        if cluster == 'slurm':
            params.update(gpus_per_node=slurm.gpus_per_trial, slurm_array_parallelism=jobs)
            for key in ('partition', 'constraint', 'account', 'qos'):
                if getattr(slurm, key):
                    params[f'slurm_{key}'] = getattr(slurm, key)
            if slurm.mem_gb:
                params['mem_gb'] = slurm.mem_gb
            params.update({f'slurm_{k}' if not k.startswith('slurm_') else k: v
                           for k, v in slurm.extra.items()})
        self.executor.update_parameters(**params)

    def submit(self, attempts: Sequence[Attempt]) -> list:
        with self.executor.batch():
            jobs = [self.executor.submit(train_attempt, a) for a in attempts]
        return jobs

    @staticmethod
    def running(handle) -> bool:
        with contextlib.suppress(Exception):
            return handle.state == 'RUNNING'
        return False

    def close(self) -> None:
        pass


def _outcome(handle) -> dict:
    try:
        return handle.result()
    except Exception as e:  # a SLURM job that died (timeout, node failure) or a bug
        text = str(e).strip() or type(e).__name__
        return dict(ok=False, returncode=None, wall_time=None, metrics={}, resumed=False,
                    error='\n'.join(text.splitlines()[-ERROR_TAIL_LINES:]))


def make_backend(executor: str, jobs: int, folder: str, slurm: SlurmOptions,
                 threads: Optional[int]):
    """The backend of ``executor`` (:data:`EXECUTORS`) with ``jobs`` slots; ``folder`` holds
    submitit's job files (``FOLDER/submitit/``)."""
    if executor == 'local':
        return _LocalBackend(jobs)
    if executor == 'workers':
        return WorkerBackend(jobs, fallback=train_attempt)
    return _SubmititBackend(osp.join(folder, 'submitit'), jobs,
                            'slurm' if executor == 'slurm' else 'local', slurm, threads)
