"""Long-lived training workers for local studies: trial after trial in a warm process.

``tools/study.py run --executor local`` trains each trial attempt as its own
``python tools/train.py CONFIG ...`` process, which pays the start-up every time: importing
torch, mmengine and the codebase, filling the registries, then building the datasets. On the CPU
study recipe that start-up is a large share of a trial of a minute or less.
:class:`WorkerBackend` keeps one worker process per slot (``jobs``). A worker imports once and
then runs ``tools/train.py``'s own ``main(argv)`` in-process, attempt after attempt, so every
attempt goes through the same engine code (config loading, strict loading, crash-safe
checkpoints, the work-dir lock, one-line errors) as a subprocess would.

Isolation is what the subprocesses gave, per attempt:

* an attempt's stdout and stderr go to its ``attempt-K.out`` / ``.err`` files (file descriptors
  1 and 2 are redirected, so output from C code and a fatal signal's traceback land there too);
* an attempt that fails (a user error, an exception, a non-finite loss) is a failed attempt and
  the worker takes the next one;
* a worker that dies (a segfault, the OOM killer, ``os._exit``) fails only the attempt it was
  running, with the tail of its stderr and how the process ended; the next attempt starts a new
  worker;
* what a Runner leaves behind in mmengine's global registries of named instances (loggers and
  their open log files, message hubs, visualizers, scopes) is dropped after each attempt.

The backend has the interface of the other executors (:mod:`.executors`): ``submit(attempts)``
returns one ``concurrent.futures.Future`` per attempt, whose result is an outcome dict judged
by :func:`.attempt.judge`, as a subprocess's is. Two-stage trials (``--pretrain``) keep
:func:`.attempt.train_attempt`'s subprocess per stage.

The worker side is this file run as a script (standard library only until the first attempt
imports the train tool); it reads one JSON request per line on stdin and answers one JSON line
on stdout.
"""
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

#: The folder that holds the ``regnet_backbone`` package: a worker imports this checkout's copy.
_PACKAGE_PARENT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
#: The worker runs this file as a script: no package import (torch) before its first attempt.
_WORKER_SCRIPT = osp.abspath(__file__)


# --- the parent's side ----------------------------------------------------------------------------
class WorkerDied(RuntimeError):
    """The worker process ended while it ran an attempt."""


def _ending(returncode: Optional[int]) -> str:
    if returncode is None:
        return 'it stopped answering'
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f'killed by signal {-returncode} ({signal.Signals(-returncode).name})'
        return f'killed by signal {-returncode}'
    return f'exit status {returncode}'


class _Worker:
    """One worker process and the pipes to it (used by one pool thread at a time)."""

    def __init__(self, python: str, threads: Optional[int]):
        self.python, self.threads = python, threads
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        env.setdefault('PYTHONWARNINGS', 'ignore')
        env['PYTHONPATH'] = os.pathsep.join(
            [_PACKAGE_PARENT] + [p for p in [os.environ.get('PYTHONPATH')] if p])
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        # What the worker prints outside an attempt (an import error at start-up) lands here.
        self.log = tempfile.TemporaryFile('w+', errors='replace')
        self.proc = subprocess.Popen(
            [python, _WORKER_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, env=env, text=True, bufsize=1)
        self.trials = 0

    def log_tail(self, lines: Optional[int] = None) -> str:
        from ..runtime.logs import ERROR_TAIL_LINES
        lines = ERROR_TAIL_LINES if lines is None else lines
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0)
            kept = [line for line in self.log.read().splitlines() if line.strip()]
            return '\n'.join(kept[-lines:])
        return ''

    def fits(self, python: str, threads: Optional[int]) -> bool:
        return self.proc.poll() is None and (python, threads) == (self.python, self.threads)

    def train(self, request: dict) -> dict:
        """Send one request and wait for the reply; raises :class:`WorkerDied`."""
        try:
            self.proc.stdin.write(json.dumps(request) + '\n')
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (OSError, ValueError):  # a closed pipe: the worker is gone
            line = ''
        if not line:
            try:
                returncode = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.stop()
                returncode = None
            raise WorkerDied(f'the study worker process (PID {self.proc.pid}) died during this '
                             f'attempt: {_ending(returncode)}')
        self.trials += 1
        try:
            return json.loads(line)
        except ValueError:
            raise WorkerDied(f'the study worker process (PID {self.proc.pid}) sent a broken '
                             f'reply: {line[:200]!r}') from None

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.log):
            with contextlib.suppress(OSError, ValueError):
                stream.close()



class WorkerBackend:
    """Attempts on ``jobs`` long-lived worker processes of this machine (see the module).

    Args:
        jobs: attempts trained at once, one worker process each.
        max_trials_per_worker: replace a worker after this many attempts (None: never), a guard
            against memory that a codebase keeps between runs.
        fallback: ``fallback(attempt) -> outcome`` runs the attempts a worker does not (two-stage
            trials), e.g. the run loop's subprocess ``train_attempt``.
    """

    def __init__(self, jobs: int, max_trials_per_worker: Optional[int] = None,
                 fallback: Optional[Callable] = None):
        self.fallback = fallback
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix='study-worker')
        self.max_trials = max_trials_per_worker
        self._idle: List[_Worker] = []
        self._all: List[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self, python: str, threads: Optional[int]) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerDied('the study run is stopping')
            while self._idle:
                worker = self._idle.pop()
                if worker.fits(python, threads):
                    return worker
                self._retire(worker)
            worker = _Worker(python, threads)
            self._all.append(worker)
            return worker

    def _retire(self, worker: _Worker) -> None:
        worker.stop()
        with contextlib.suppress(ValueError):
            self._all.remove(worker)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed or (self.max_trials and worker.trials >= self.max_trials):
                self._retire(worker)
            else:
                self._idle.append(worker)

    def _run(self, attempt) -> dict:
        from ..runtime.logs import tail as file_tail
        from .attempt import judge, output_files, train_argv
        from .layout import _has_checkpoint
        if getattr(attempt, 'pretrain_config', None):
            # A two-stage trial (pretrain, convert, fine-tune) keeps its subprocess per stage.
            if self.fallback is None:
                return judge(attempt, -1, 'two-stage trials need a fallback (the subprocess '
                             'path) in WorkerBackend', 0.0, False)
            return self.fallback(attempt)
        out, err = output_files(attempt, attempt.config)
        resumed = _has_checkpoint(attempt.work_dir)
        argv = train_argv(attempt.config, attempt.work_dir, 'none', resumed)
        request = dict(train_tool=attempt.train_tool, argv=argv, out=out, err=err,
                       cwd=attempt.cwd, threads=attempt.threads)
        start = time.time()
        try:
            worker = self._take(attempt.python, attempt.threads)
        except OSError as e:
            return judge(attempt, -1, f'cannot start a study worker ({attempt.python}): {e}',
                         time.time() - start, resumed)
        try:
            reply = worker.train(request)
        except WorkerDied as e:
            tail = file_tail(err) or worker.log_tail()
            with self._lock:
                self._retire(worker)
            return judge(attempt, -1, f'{tail}\n{e}' if tail else str(e), time.time() - start,
                         resumed)
        self._give_back(worker)
        returncode = reply.get('returncode', 1)
        error = None if returncode == 0 else (file_tail(err) or f'train.py exited {returncode}')
        return judge(attempt, returncode, error, time.time() - start, resumed)

    def submit(self, attempts: Sequence) -> List[Future]:
        return [self.pool.submit(self._run, a) for a in attempts]

    @staticmethod
    def running(handle) -> bool:
        return handle.running()

    def close(self) -> None:
        """Stop every worker at once (an attempt in flight is abandoned, as a Ctrl-C leaves a
        ``tools/train.py`` process) and the pool."""
        with self._lock:
            self._closed = True
            workers, self._idle = list(self._all), []
        for worker in workers:
            worker.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


# --- the worker's side ----------------------------------------------------------------------------
@contextlib.contextmanager
def _redirected(out: str, err: str):
    """File descriptors 1 and 2 (and ``sys.stdout`` / ``sys.stderr``) into ``out`` / ``err``."""
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
    if 'mmengine' not in sys.modules:
        return {}
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
    """Drop the named instances (loggers, message hubs, visualizers, scopes) made since
    ``before``, closing the loggers' files."""
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


_TOOLS: Dict[str, object] = {}


def _train_tool(tool: str):
    """The train CLI (a module name or a ``.py`` file) as a module, imported once per worker."""
    if tool not in _TOOLS:
        if not tool.endswith('.py'):
            _TOOLS[tool] = importlib.import_module(tool)
        else:
            spec = importlib.util.spec_from_file_location(f'_regnet_train_{len(_TOOLS)}', tool)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _TOOLS[tool] = module
    return _TOOLS[tool]


def run_request(request: dict) -> dict:
    """Run one attempt in this process: ``tools/train.py``'s ``main(argv)`` with its output in
    the attempt's files. Returns ``dict(returncode, wall_time)``; never raises for a failed
    training (a traceback goes to the attempt's stderr file, like an uncaught exception in a
    subprocess)."""
    start = time.time()
    before = _named_instances()
    returncode = 1
    with _redirected(request['out'], request['err']):
        try:
            if request.get('cwd'):
                os.chdir(request['cwd'])
            if request.get('threads') and 'torch' in sys.modules:
                # (a fresh worker's torch reads OMP_NUM_THREADS, set when it started)
                sys.modules['torch'].set_num_threads(int(request['threads']))
            returncode = _train_tool(request['train_tool']).main(list(request['argv'])) or 0
        except SystemExit as e:
            returncode = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int) and e.code is not None:
                print(e.code, file=sys.stderr)
        except BaseException:  # noqa: B902 - the attempt fails; the worker goes on
            traceback.print_exc()
            returncode = 1
        finally:
            _forget_instances(before)
            gc.collect()
    return dict(returncode=returncode, wall_time=time.time() - start)


def serve(requests, replies) -> None:
    """Answer each JSON request line of ``requests`` with one JSON line on ``replies``."""
    for line in requests:
        if not line.strip():
            continue
        reply = run_request(json.loads(line))
        replies.write(json.dumps(reply) + '\n')
        replies.flush()


def main() -> None:
    import faulthandler
    # The pipes to the parent move off descriptors 0 and 1, so that nothing a training run
    # prints can reach them; between attempts 1 points at /dev/null and 2 at the worker's log.
    requests = os.fdopen(os.dup(0), 'r')
    replies = os.fdopen(os.dup(1), 'w')
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)
    faulthandler.enable(file=sys.__stderr__)  # fd 2: the running attempt's stderr file
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers on Ctrl-C
    serve(requests, replies)


if __name__ == '__main__':
    del sys.path[0]  # this file's folder: its modules (layout, prepare, ...) are not top-level ones
    main()
