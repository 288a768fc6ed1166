"""Where a study's attempts run: the executors behind ``tools/study.py run --executor``.

Each is a backend with ``submit(attempts) -> handles``, ``running(handle)`` and ``close()``; a
handle has ``done()``, and :func:`outcome` reads what :func:`.attempt.train_attempt` returned
for it. Both run :func:`.attempt.train_attempt` in a process of their own, which trains in-process.

* ``local`` (:class:`LocalBackend`): ``jobs`` long-lived worker processes on this machine, each
  training attempt after attempt, so the start-up (importing torch, mmengine and the codebase)
  is paid once per worker, not once per trial. A worker that dies (a segfault, the OOM killer,
  ``os._exit``) fails only the attempt it was running, with the tail of its stderr and how the
  process ended; the next attempt starts a new worker. Workers are ``multiprocessing``'s spawn
  processes (a fresh interpreter each); an attempt goes there and its outcome comes back
  through a ``multiprocessing`` pipe.
* ``slurm`` (:class:`SubmititBackend`): a SLURM job array through submitit, one job per attempt
  (:class:`SlurmOptions` says what each job asks for).

``multiprocessing``'s spawn imports the parent's main script in each worker: a script that runs
a study needs an ``if __name__ == '__main__':`` guard (``tools/study.py`` has one).
"""
import contextlib
import faulthandler
import multiprocessing
import os.path as osp
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..runtime.logs import ERROR_TAIL_LINES, tail
from .attempt import Attempt, output_files, train_attempt
from .layout import StudyError

EXECUTORS = ('local', 'slurm')
#: Seconds between two looks at the running attempts, per executor.
POLL_S = {'local': 0.5, 'slurm': 30.0}


def lost(error: str, returncode: Optional[int] = None,
         wall_time: Optional[float] = None) -> dict:
    """The outcome of an attempt whose process ended without giving one (a crash, a SLURM job
    that timed out or lost its node), in :func:`.attempt.judge`'s format."""
    return dict(ok=False, returncode=returncode, wall_time=wall_time, error=error,
                resumed=False, metrics={}, rank=0)


def outcome(handle) -> dict:
    """What the attempt of ``handle`` (a finished one) returned, or why it returned nothing."""
    try:
        return handle.result()
    except Exception as e:  # a SLURM job that died (timeout, node failure) or a bug
        text = str(e).strip() or type(e).__name__
        return lost('\n'.join(text.splitlines()[-ERROR_TAIL_LINES:]))


# --- local: long-lived worker processes -----------------------------------------------------------
def _serve(conn) -> None:
    """A worker's loop: train each :class:`Attempt` received on ``conn``, send its outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops workers
    faulthandler.enable()  # a fatal signal's traceback goes to fd 2: the attempt's .err
    while True:
        try:
            attempt = conn.recv()
        except EOFError:  # the parent is gone
            return
        conn.send(train_attempt(attempt))


def _ending(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return 'it stopped answering'
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f'killed by signal {-exitcode} ({signal.Signals(-exitcode).name})'
        return f'killed by signal {-exitcode}'
    return f'exit status {exitcode}'


class _Worker:
    """One worker process and the pipe to it (used by one slot thread at a time)."""

    def __init__(self):
        context = multiprocessing.get_context('spawn')
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end, ),
                                       name='regnet-study-worker')
        # A Ctrl-C while the worker imports (seconds) would print its traceback: the worker
        # inherits SIGINT ignored where this thread can set it (the main thread's workers).
        main = threading.current_thread() is threading.main_thread()
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, handler)
        child_end.close()  # the worker holds the only other end: its death reads as EOF

    def train(self, attempt: Attempt) -> dict:
        """The outcome of ``attempt``, trained in this worker; when the worker dies, a failed
        one with the tail of the attempt's stderr and how the process ended."""
        start = time.time()
        try:
            self.conn.send(attempt)
            return self.conn.recv()
        except (EOFError, OSError):  # the worker is gone
            pass
        self.process.join(timeout=30)
        self.conn.close()
        # (a two-stage trial has one stderr per stage: the one written last)
        errs = [output_files(attempt, c)[1] for c in (attempt.pretrain_config, attempt.config)
                if c]
        errs = [e for e in errs if osp.isfile(e)]
        text = tail(max(errs, key=osp.getmtime)) if errs else ''
        why = (f'the study worker process (PID {self.process.pid}) died during this attempt: '
               f'{_ending(self.process.exitcode)}')
        return lost(f'{text}\n{why}' if text else why, self.process.exitcode,
                    time.time() - start)

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        self.process.kill()
        self.process.join(timeout=10)


class LocalBackend:
    """Attempts on ``jobs`` long-lived worker processes of this machine (see the module).

    The workers start at once, in the calling thread; a worker that died is replaced by the
    next attempt of its slot. ``close`` kills them (an attempt in flight is abandoned, as
    Ctrl-C leaves a training run: its crash-safe checkpoints stay, and the next run resumes).
    """

    def __init__(self, jobs: int):
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix='study-slot')
        self._lock = threading.Lock()
        self._closed = False
        self._workers: List[_Worker] = []
        # One token per slot: an idle worker, or None where the slot's worker died.
        self._idle: 'queue.SimpleQueue[Optional[_Worker]]' = queue.SimpleQueue()
        for _ in range(jobs):
            self._idle.put(self._start())

    def _start(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise StudyError('the study run is stopping')
            worker = _Worker()
            self._workers.append(worker)
            return worker

    def _run(self, attempt: Attempt) -> dict:
        worker = self._idle.get()
        try:
            if worker is None:
                worker = self._start()
            return worker.train(attempt)
        except StudyError as e:  # closed: the run is over
            return lost(str(e))
        finally:
            self._idle.put(worker if worker is not None and worker.alive() else None)

    def submit(self, attempts: Sequence[Attempt]) -> list:
        return [self.pool.submit(self._run, a) for a in attempts]

    @staticmethod
    def running(handle) -> bool:
        return handle.running()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


# --- SLURM: submitit ------------------------------------------------------------------------------
@dataclass
class SlurmOptions:
    """What each trial asks SLURM for (through submitit). ``gpus_per_trial`` > 1 runs the train
    CLI with ``--launcher slurm`` in that many tasks (one per GPU)."""
    partition: Optional[str] = None
    gpus_per_trial: int = 1
    cpus_per_task: int = 8
    time_min: int = 240
    mem_gb: Optional[int] = None
    constraint: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)


class SubmititBackend:
    """Attempts as a SLURM job array through submitit; SLURM runs at most ``jobs`` at once.

    ``cluster`` is submitit's: ``slurm``, or ``local`` for the same code path on this machine
    (each job a subprocess; what the tests use)."""

    def __init__(self, folder: str, jobs: int, slurm: SlurmOptions, threads: Optional[int],
                 cluster: str = 'slurm'):
        try:
            import submitit
        except ImportError:
            raise StudyError('--executor slurm needs submitit (pip install submitit)') from None
        try:
            self.executor = submitit.AutoExecutor(folder=osp.join(folder, '%j'), cluster=cluster)
        except RuntimeError as e:  # no srun on this machine
            raise StudyError(f'--executor {cluster}: {e}') from None
        params = dict(timeout_min=slurm.time_min, nodes=1,
                      tasks_per_node=max(1, slurm.gpus_per_trial),
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


def make_backend(executor: str, jobs: int, folder: str, slurm: SlurmOptions,
                 threads: Optional[int]):
    """The backend of ``executor`` (:data:`EXECUTORS`) with ``jobs`` slots; ``folder`` holds
    submitit's job files (``FOLDER/submitit/``)."""
    if executor == 'local':
        return LocalBackend(jobs)
    return SubmititBackend(osp.join(folder, 'submitit'), jobs, slurm, threads)
