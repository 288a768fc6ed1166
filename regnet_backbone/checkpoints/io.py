"""Safe reading and atomic writing of checkpoint files.

Pickles are only ever read weights-only: a file whose pickle would import or call anything
beyond tensors, plain containers and what mmengine's Runner stores next to the weights
(:func:`runner_checkpoint_globals`) is refused, not executed. torch >= 2.5 does this with
``torch.load(weights_only=True)`` and ``safe_globals``; older torch (2.1 to 2.4) with an
unpickler that allows torch's own weights-only globals plus the same list. ``.safetensors`` files
are read with safetensors (no pickle at all).
"""
import _compat_pickle
import collections
import contextlib
import errno
import hashlib
import json
import os
import pickle
import struct
import types
import warnings
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ..atomic import NotARegularFileError, replace_file
from .errors import (CheckpointError, CheckpointNotFoundError, CheckpointReadError,
                     OutputExistsError, UnsafeCheckpointError)
from .remote import fetch

#: The safetensors metadata entry that holds our ``meta`` dict as JSON.
SAFETENSORS_META_KEY = 'regnet_backbone.meta'


def file_sha256(path: str, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _is_safetensors(path: str) -> bool:
    """A safetensors file starts with a little-endian u64 header size, then a JSON object."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (size, ) = struct.unpack('<Q', head[:8])
    return head[8:9] == b'{' and 0 < size <= os.path.getsize(path) - 8


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f'{path}: no such file; check the path.')
    if os.path.isdir(path):
        raise CheckpointReadError(f'{path} is a directory; pass a checkpoint file.')
    if not os.path.isfile(path):  # a FIFO would block, a device never ends
        raise CheckpointReadError(f'{path} is not a regular file (a pipe, socket or device); '
                                  f'pass a checkpoint file.')
    if not os.access(path, os.R_OK):
        raise CheckpointReadError(f'{path} is not readable; check its permissions.')


def _read_safetensors(path: str) -> Any:
    from safetensors import SafetensorError, safe_open
    try:
        tensors = {}
        with safe_open(path, framework='pt', device='cpu') as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointReadError(f'{path} is not a valid safetensors file ({error}); it may be '
                                  f'truncated or corrupted, so download it again.') from None
    if SAFETENSORS_META_KEY in metadata:
        try:
            meta = json.loads(metadata[SAFETENSORS_META_KEY])
        except ValueError:
            raise CheckpointReadError(f'{path}: its {SAFETENSORS_META_KEY} metadata is not JSON; '
                                      f'convert the source file again.') from None
        return {'state_dict': tensors, 'meta': meta}
    return tensors


# --- what mmengine's Runner pickles -------------------------------------------------------------
def _history_buffer_method(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling: returns HistoryBuffer methods only.

    Each ``HistoryBuffer`` keeps its statistics functions (``min``, ``max``, ``mean``, ...) in an
    instance dict, and pickle (protocol 2, as ``torch.save`` uses) stores each one as
    ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would let a file read any
    attribute of any allowed object; this reads only those methods.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        method = getattr(HistoryBuffer, name, None)
        if callable(method):
            return method
    raise pickle.UnpicklingError(f'refusing getattr({owner!r}, {name!r}) in a checkpoint; only '
                                 'the statistics methods of mmengine HistoryBuffer are allowed.')


def runner_checkpoint_globals() -> list:
    """What a Runner checkpoint pickles besides tensors, builtins and ``collections``.

    mmengine saves its ``MessageHub`` next to the weights: ``HistoryBuffer`` objects holding numpy
    arrays (float64 values, int64 counts; 32-bit ones on some platforms) and the buffers'
    statistics methods, plus numpy scalars (the ``eta`` in ``runtime_info``). Entries are
    objects, or ``(object, name in the pickle)`` pairs: numpy 1 and numpy 2 pickle the array
    helpers under different module names. Empty when mmengine is not installed.
    """
    try:
        import numpy as np
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    entries = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_method, 'builtins.getattr')]
    entries += [type(np.dtype(t)) for t in (np.float64, np.int64, np.float32, np.int32)]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    return entries


def allow_runner_checkpoints() -> None:
    """Allow-list :func:`runner_checkpoint_globals` for ``torch.load(weights_only=True)``.

    mmengine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means the
    safe unpickler, which refuses ``HistoryBuffer`` and friends, so ``--resume`` and ``load_from``
    of the Runner's own checkpoints fail. Safe loading stays on; only these objects are added.
    """
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(runner_checkpoint_globals())


def _torch_has_safe_globals() -> bool:
    """torch >= 2.5: ``weights_only=True`` accepts an allow-list for the block."""
    return hasattr(torch.serialization, 'safe_globals')


@contextlib.contextmanager
def _runner_globals():
    """Allow :func:`runner_checkpoint_globals` for the block; entries that were allowed already
    (:func:`allow_runner_checkpoints`) stay allowed afterwards."""
    present = set(torch.serialization.get_safe_globals())
    extra = [e for e in runner_checkpoint_globals() if e not in present]
    with torch.serialization.safe_globals(extra):
        yield


class _AllowListUnpickler(pickle.Unpickler):
    """The weights-only rule for a torch without ``safe_globals`` (2.1 to 2.4): a pickle may
    name only the weights-only globals of torch (2.14's list) and
    :func:`runner_checkpoint_globals`; any other global is refused before it is
    imported or called (the "restricting globals" recipe of the pickle documentation)."""

    allowed: Dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 (torch.save's) writes Python 2 names, e.g. __builtin__.getattr; the
        # unpickler this replaces maps them back.
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        found = self.allowed.get(f'{module}.{name}')
        if found is None:
            raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {module}.{name} was not '
                                         f'an allowed global')
        return found


def _allow_list() -> Dict[str, Any]:
    import _codecs
    from torch._weights_only_unpickler import _get_allowed_globals  # torch's own list
    allowed = dict(_get_allowed_globals())
    # What later torch releases added to that list (as of 2.14): data types, no code.
    allowed.update({'_codecs.encode': _codecs.encode, 'builtins.set': set,
                    'builtins.bytearray': bytearray, 'builtins.complex': complex,
                    'collections.Counter': collections.Counter})
    for entry in runner_checkpoint_globals():
        obj, name = entry if isinstance(entry, tuple) else (entry, None)
        allowed[name or f'{obj.__module__}.{obj.__name__}'] = obj
    return allowed


def _allow_list_pickle_module():
    """A ``pickle_module`` for ``torch.load`` whose unpickler follows :class:`_AllowListUnpickler`."""
    unpickler = type('Unpickler', (_AllowListUnpickler, ), {'allowed': _allow_list()})
    return types.SimpleNamespace(__name__='regnet_backbone_allow_list', Unpickler=unpickler,
                                 load=lambda f, **kwargs: unpickler(f, **kwargs).load())


def _load_kwargs() -> Tuple[contextlib.AbstractContextManager, dict]:
    """How this torch reads a pickle weights-only: its own unpickler with the Runner allow-list
    where it has ``safe_globals``, else :class:`_AllowListUnpickler`. Decided before the file is
    opened, so that a missing API is never taken for a bad file."""
    if _torch_has_safe_globals():
        return _runner_globals(), dict(weights_only=True)
    return contextlib.nullcontext(), dict(weights_only=False,
                                          pickle_module=_allow_list_pickle_module())


def _unsafe_reason(error: Exception) -> Optional[str]:
    """What made the weights-only unpickler refuse a file, when it was a forbidden object; None
    when the bytes are simply not a pickle torch understands (random bytes, another format)."""
    text = str(error)
    for line in text.splitlines():
        line = line.strip()
        if 'GLOBAL' in line or 'refusing getattr' in line:
            line = line.split('WeightsUnpickler error:')[-1].strip()
            return line.split('. Please use')[0]
    lowered = text.lower()
    for marker in ('unsupported class', 'reduce', 'build_instance', 'setstate', 'newobj'):
        if marker in lowered:
            detail = [ln.strip() for ln in text.splitlines() if marker in ln.lower()]
            return detail[0].split('WeightsUnpickler error:')[-1].strip()[:200]
    return None


# What torch.save writes starts with a zip archive's header (torch >= 1.6) or a pickle's
# protocol opcode (the legacy format: protocol 2). Other pickles are let through too, so that a
# malicious one is reported as such by the weights-only unpickler.
_ZIP_HEADER = b'PK'
_PICKLE_PROTOCOLS = (2, 3, 4, 5)


def _looks_like_torch_file(path: str) -> bool:
    with open(path, 'rb') as f:
        head = f.read(2)
    return head == _ZIP_HEADER or (len(head) == 2 and head[0] == 0x80
                                   and head[1] in _PICKLE_PROTOCOLS)


def _not_a_checkpoint(path: str) -> CheckpointReadError:
    return CheckpointReadError(
        f'{path} is not a checkpoint (its bytes are not a PyTorch pickle): another kind of '
        f'file, or a corrupted download; pass a .pth/.pyth/.safetensors checkpoint.')


def _read_pickle(path: str) -> Any:
    if not _looks_like_torch_file(path):  # decided by the header, not by how unpickling happens
        raise _not_a_checkpoint(path)
    allow, kwargs = _load_kwargs()
    # mmap keeps a large zip checkpoint out of memory until its tensors are used.
    kwargs.update(map_location='cpu', mmap=zipfile.is_zipfile(path))
    # Only torch.load is inside the try: what it raises for a bad file is reported as such.
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol: the library is quiet
            warnings.simplefilter('ignore')
            with allow:
                return torch.load(path, **kwargs)
    except pickle.UnpicklingError as error:
        reason = _unsafe_reason(error)
        if reason is not None:
            raise UnsafeCheckpointError(
                f'{path}: refused to unpickle it because it is not weights-only '
                f'({reason}); loading it could run code, so if you trust the file '
                f're-save just its state dict with torch.save.') from None
        if 'Weights only load failed' in str(error):
            raise _not_a_checkpoint(path) from None
        raise CheckpointReadError(f'{path} is not a readable checkpoint ({error}); it may be '
                                  f'truncated or corrupted, so download it again.') from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, TypeError, IndexError,
            zipfile.BadZipFile, UnicodeDecodeError, struct.error) as error:
        text = str(error).strip()
        if isinstance(error, (KeyError, IndexError, UnicodeDecodeError, struct.error)) or not text:
            detail = 'its bytes are not a PyTorch checkpoint'
        elif 'not a ZIP archive' in text or 'failed finding central directory' in text:
            detail = 'a broken zip archive: not a checkpoint, or a truncated one'
        else:
            detail = text.splitlines()[0]
        raise CheckpointReadError(f'{path} is not a readable checkpoint ({detail}); it may be '
                                  f'truncated or corrupted, so download it again.') from None


def read_checkpoint(path: str) -> Any:
    """Load a ``.pth/.pt/.pyth/.bin/.ckpt`` (weights-only pickle) or ``.safetensors`` file, or a
    model-zoo name or URL (``open-mmlab://``, ``torchvision://``, ``https://``...: downloaded once
    into torch.hub's cache by :func:`.remote.fetch`, then read the same way).

    Returns whatever the file holds (usually a dict); the tensors are on the CPU.
    Raises ``CheckpointNotFoundError``, ``CheckpointReadError`` or ``UnsafeCheckpointError``.
    """
    name = os.fspath(path)
    path = fetch(name)
    if path == name:
        return _read_local(path)
    try:
        return _read_local(path)
    except CheckpointReadError as error:
        # A download cut short without a hash in its name is cached as if complete: drop it,
        # so that the next run downloads it again.
        os.remove(path)
        raise CheckpointReadError(f'{error} (downloaded from {name}; the cached copy was '
                                  f'removed, so the next run downloads it again)') from None


def _read_local(path: str) -> Any:
    _check_readable(path)
    if os.path.getsize(path) == 0:
        raise CheckpointReadError(f'{path} is empty; download or convert it again.')
    if _is_safetensors(path):
        return _read_safetensors(path)
    if path.endswith('.safetensors'):
        raise CheckpointReadError(f'{path} has no valid safetensors header; it is truncated or '
                                  f'corrupted, so download it again.')
    return _read_pickle(path)


def _write_safetensors(obj: dict, path: str) -> None:
    """``{'state_dict': ..., 'meta': ...}`` (meta kept as JSON metadata) or a plain state dict."""
    from safetensors.torch import save_file
    if isinstance(obj.get('state_dict'), dict):
        state_dict, metadata = obj['state_dict'], {
            SAFETENSORS_META_KEY: json.dumps(obj.get('meta', {}))}
    else:
        state_dict, metadata = obj, None
    # clone: safetensors refuses tensors sharing storage (a flipped view, mmap'ed inputs)
    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, path, metadata=metadata)


def nonfinite_tensors(state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """Names of floating-point tensors holding NaN or Inf (a diverged or corrupted training)."""
    return [k for k, v in state_dict.items()
            if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())]


def _write_failure(path: str, error: BaseException) -> CheckpointError:
    """One line for a failed write; a full disk is named as such."""
    text = str(error)
    full = (getattr(error, 'errno', None) in (errno.ENOSPC, errno.EDQUOT)
            or 'No space left' in text or 'file write failed' in text)
    if full:
        return CheckpointError(f'cannot write {path}: No space left on device (the disk is '
                               f'full or over quota); free some space or choose another output '
                               f'folder. Nothing was written.')
    detail = getattr(error, 'strerror', None) or (text.splitlines()[0] if text else
                                                  type(error).__name__)
    return CheckpointError(f'cannot write {path} ({detail}); check the folder and free disk '
                           f'space. Nothing was written.')


def write_atomic(obj: Any, path: str, force: bool = False,
                 saver: Optional[Callable[[Any, str], None]] = None) -> None:
    """Write ``obj`` to ``path`` all at once: a temporary file in the same folder, then
    ``os.replace``. On any failure nothing is left behind and an existing file is untouched.

    ``.safetensors`` paths take ``{'state_dict': ..., 'meta': ...}`` (``meta`` is stored as JSON
    metadata) or a plain state dict; every other path is written with ``torch.save``. A missing
    output folder is created (``checkpoints/`` on a fresh clone). Symlinks are written through
    and special files refused (:mod:`regnet_backbone.atomic`); a new file's mode follows the
    umask. Raises ``OutputExistsError`` when ``path`` exists and ``force`` is False, and
    ``CheckpointError`` (one line) for a refused path or a failed write, e.g. a full disk.
    """
    path = os.fspath(path)
    if os.path.lexists(path) and not force:
        raise OutputExistsError(f'{path} already exists; pass --force (force=True) to overwrite '
                                f'it or choose another output path.')
    try:
        target = os.path.dirname(os.path.realpath(path))
        os.makedirs(target, exist_ok=True)
    except NotADirectoryError:
        raise CheckpointError(f'cannot write {path}: a part of its folder path is a file, not '
                              f'a folder; choose another output path.') from None
    except OSError as error:
        raise _write_failure(path, error) from None
    if saver is None:
        saver = _write_safetensors if path.endswith('.safetensors') else torch.save
    try:
        replace_file(path, lambda tmp: saver(obj, tmp), overwrite=force)
    except FileExistsError:  # appeared while we were writing
        raise OutputExistsError(f'{path} appeared while writing; pass --force to overwrite '
                                f'it.') from None
    except NotARegularFileError as error:
        raise CheckpointError(str(error)) from None
    except CheckpointError:
        raise
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as RuntimeError
        raise _write_failure(path, error) from None
    except Exception as error:  # safetensors' own error types
        if type(error).__name__ != 'SafetensorError':
            raise
        raise _write_failure(path, error) from None
