"""One training run per work dir, and one runner per study: ``train.lock``."""
import contextlib
import errno
import json
import logging
import os
import os.path as osp
import socket
import time
from typing import Optional

from .dist import launch_rank
from .errors import WorkDirLockedError

LOCK_FILE = 'train.lock'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class WorkDirLock:
    """An exclusive lock on a training work dir: ``<work_dir>/train.lock``.

    The file holds one JSON line, ``{"pid": ..., "host": ..., "started": ..., "config": ...}``,
    and the holder keeps an ``fcntl.flock`` on it. The kernel drops that lock when the process
    ends, however it ends, so a lock file left by a killed run is *stale*: the next run gets the
    flock, logs that it takes the lock over from that PID, and rewrites the file. A live holder
    makes :meth:`acquire` raise :class:`WorkDirLockedError` naming its PID. Where ``flock`` is
    not supported (some network filesystems) the PID is checked instead (same host only).
    The file is removed on release.
    """

    def __init__(self, work_dir: str, config_path: str = ''):
        self.work_dir, self.config_path = work_dir, config_path
        self.path = osp.join(work_dir, LOCK_FILE)
        self._fd: Optional[int] = None
        self.taken_over: Optional[dict] = None

    @staticmethod
    def read(path: str) -> dict:
        try:
            with open(path) as f:
                info = json.loads(f.read() or '{}')
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refuse(self, info: dict):
        pid = info.get('pid', '?')
        since = f' since {info["started"]}' if info.get('started') else ''
        host = f' on {info["host"]}' if info.get('host') else ''
        raise WorkDirLockedError(
            f'work dir {self.work_dir} is in use by another training run (PID {pid}{host}'
            f'{since}; lock file {self.path}); wait for it or stop it, or train into another '
            f'--work-dir.')

    def acquire(self) -> 'WorkDirLock':
        import fcntl
        os.makedirs(self.work_dir, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._refuse(self.read(self.path))
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                info = self.read(self.path)  # no flock here: fall back to the PID
                pid = info.get('pid')
                if (isinstance(pid, int) and pid != os.getpid() and
                        info.get('host') == socket.gethostname() and _pid_alive(pid)):
                    os.close(fd)
                    self._refuse(info)
            try:  # the file we locked may have been released and removed meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = self.read(self.path)
            if old.get('pid') not in (None, os.getpid()):
                self.taken_over = old
            info = dict(pid=os.getpid(), host=socket.gethostname(),
                        started=time.strftime('%Y-%m-%dT%H:%M:%S'), config=self.config_path)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
            self._fd = fd
            return self
        raise WorkDirLockedError(f'could not lock {self.path}: it keeps changing; is another '
                                 f'run starting in {self.work_dir}?')

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still holding the lock (see acquire's inode check)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def work_dir_lock(cfg, config_path: str = ''):
    """:class:`WorkDirLock` on ``cfg.work_dir``, taken by the launcher's rank 0 only (the other
    processes of the same run share the dir)."""
    if launch_rank(cfg.get('launcher', 'none')) != 0:
        yield None
        return
    from mmengine.logging import print_log
    lock = WorkDirLock(cfg.work_dir, config_path)
    with lock:
        if lock.taken_over:
            print_log(f'took over the stale lock {lock.path} of PID '
                      f'{lock.taken_over.get("pid")}, which is no longer running',
                      logger='current', level=logging.WARNING)
        yield lock
