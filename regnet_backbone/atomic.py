"""Atomic file replacement: readers, and a run restarted after a crash, see the old file or the
complete new one, never a prefix of the new one.

Used for every file this package writes that someone may read back: converted checkpoints
(:mod:`regnet_backbone.checkpoints.io`), training checkpoints and mmengine's ``last_checkpoint``
pointer (:mod:`regnet_backbone.runtime.engine`), and the demo's pictures.

Policy for what ``path`` may be (the same for every writer):

* a regular file, or nothing yet: written (a new file gets ``0666 & ~umask``, like ``open()``
  and ``torch.save``; a replaced file keeps its permission bits);
* a **symlink: written through** to its target, as ``open(path, 'w')`` would. The target file is
  replaced atomically in its own folder and the link stays a link. A dangling link creates its
  target when the target's folder exists;
* anything else (a folder, a FIFO, a socket, a character or block device such as ``/dev/null``):
  **refused** with :class:`NotARegularFileError` and left untouched. An atomic rename would
  replace the special file itself with a regular one (as root, ``/dev/null`` became a file).
"""
import contextlib
import os
import stat
import tempfile
from typing import Callable

#: Temporary files are ``.<name>.<random>`` + this suffix in the target's folder: hidden, and
#: never mistaken for a checkpoint (``*.pth``). A process killed mid-write can leave one behind.
TMP_SUFFIX = '.tmp'

_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a FIFO (named pipe)'),
          (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
          (stat.S_ISSOCK, 'a socket'))


class NotARegularFileError(OSError):
    """The output path exists and is not a regular file (nor a symlink to one): refused."""


def is_leftover(name: str) -> bool:
    """Whether a file name is one of :func:`replace_file`'s temporary files."""
    return name.startswith('.') and name.endswith(TMP_SUFFIX)


def current_umask() -> int:
    """The process umask (read without changing it where ``/proc`` tells it)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def resolve_output(path: str) -> str:
    """The file that writing ``path`` really creates or replaces (symlinks followed).

    Raises:
        NotARegularFileError: ``path`` (or what it links to) exists and is not a regular file.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), 'not a regular file')
        via = f' (through the symlink {path})' if target != os.path.abspath(path) else ''
        raise NotARegularFileError(f'refusing to write {target}{via}: it is {kind}, not a '
                                   f'regular file; choose a file path.')
    return target


def replace_file(path: str, write: Callable[[str], None], overwrite: bool = True) -> None:
    """Create or replace ``path`` with what ``write(tmp_path)`` writes, all at once.

    ``write`` fills a temporary file in the same folder as the real target (see the module's
    policy on symlinks); its bytes are flushed to disk, it gets its final permissions and it is
    renamed over the target (``os.replace`` is atomic within a filesystem). On any error,
    including ``KeyboardInterrupt``, the temporary file is removed and ``path`` is untouched.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist.
        FileExistsError: ``overwrite`` is False and ``path`` exists when the write completes.
        NotARegularFileError: ``path`` is a folder, FIFO, device or socket.
    """
    target = resolve_output(path)
    folder = os.path.dirname(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(target)}.', suffix=TMP_SUFFIX,
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600 whatever the umask
        if not overwrite and os.path.lexists(path):
            raise FileExistsError(f'{path} already exists')
        resolve_output(path)  # it may have become a FIFO or device while we wrote
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def replace_bytes(path: str, data: bytes) -> None:
    """:func:`replace_file` with ``data`` as the content; creates the folder when missing."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            f.write(data)

    replace_file(path, write)
