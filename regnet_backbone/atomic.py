"""Atomic file replacement: readers, and a run restarted after a crash, see the old file or the
complete new one, never a prefix of the new one.

Used for every file this package writes that someone may read back: converted checkpoints
(:mod:`regnet_backbone.checkpoints.io`), training checkpoints and mmengine's ``last_checkpoint``
pointer (:mod:`regnet_backbone.runtime.engine`), and the demo's pictures.
"""
import contextlib
import os
import tempfile
from typing import Callable

#: Temporary files are ``.<name>.<random>`` + this suffix in the target's folder: hidden, and
#: never mistaken for a checkpoint (``*.pth``). A process killed mid-write can leave one behind.
TMP_SUFFIX = '.tmp'


def is_leftover(name: str) -> bool:
    """Whether a file name is one of :func:`replace_file`'s temporary files."""
    return name.startswith('.') and name.endswith(TMP_SUFFIX)


def replace_file(path: str, write: Callable[[str], None], overwrite: bool = True) -> None:
    """Create or replace ``path`` with what ``write(tmp_path)`` writes, all at once.

    ``write`` fills a temporary file in the same folder; its bytes are flushed to disk and the
    file is renamed over ``path`` (``os.replace`` is atomic within a filesystem). On any error,
    including ``KeyboardInterrupt``, the temporary file is removed and ``path`` is untouched.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist.
        FileExistsError: ``overwrite`` is False and ``path`` exists when the write completes.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix=TMP_SUFFIX,
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f'{path} already exists')
        os.replace(tmp, path)
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
