"""Safe reading and atomic writing of checkpoint files.

Pickles are only ever opened with ``torch.load(weights_only=True)``: a file whose pickle would
import or call anything beyond tensors and plain containers is refused, not executed.
``.safetensors`` files are read with safetensors (no pickle at all).
"""
import hashlib
import json
import os
import pickle
import struct
import warnings
import zipfile
from typing import Any, Callable, Optional

import torch

from ..atomic import replace_file
from .errors import (CheckpointError, CheckpointNotFoundError, CheckpointReadError,
                     OutputExistsError, UnsafeCheckpointError)

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
    if '://' in path and not os.path.exists(path):
        raise CheckpointNotFoundError(
            f'{path} is a URL or model-zoo name; only local files are read, so download it and '
            f'pass the file (see docs/pretrained.md).')
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f'{path}: no such file; check the path.')
    if os.path.isdir(path):
        raise CheckpointReadError(f'{path} is a directory; pass a checkpoint file.')
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


def _unsafe_reason(error: Exception) -> str:
    for line in str(error).splitlines():
        line = line.strip()
        if 'GLOBAL' in line:
            return line.split('. Please use')[0]
    for line in str(error).splitlines():
        if 'WeightsUnpickler error' in line:
            return line.strip()
    return 'it uses pickle features beyond tensors and plain containers'


def _read_pickle(path: str) -> Any:
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol: the library is quiet
            warnings.simplefilter('ignore')
            # mmap keeps a large zip checkpoint out of memory until its tensors are used.
            return torch.load(path, map_location='cpu', weights_only=True,
                              mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        if 'Weights only load failed' in str(error):
            raise UnsafeCheckpointError(
                f'{path}: refused to unpickle it because it is not weights-only '
                f'({_unsafe_reason(error)}); loading it could run code, so if you trust the file '
                f're-save just its state dict with torch.save.') from None
        raise CheckpointReadError(f'{path} is not a readable checkpoint ({error}); it may be '
                                  f'truncated or corrupted, so download it again.') from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, TypeError, AttributeError,
            IndexError, zipfile.BadZipFile, UnicodeDecodeError, struct.error) as error:
        text = str(error).strip()
        if isinstance(error, (KeyError, IndexError, UnicodeDecodeError, struct.error)) or not text:
            detail = 'its bytes are not a PyTorch checkpoint'
        else:
            detail = text.splitlines()[0]
        raise CheckpointReadError(f'{path} is not a readable checkpoint ({detail}); it may be '
                                  f'truncated or corrupted, so download it again.') from None


def read_checkpoint(path: str) -> Any:
    """Load a ``.pth/.pt/.pyth/.bin/.ckpt`` (weights-only pickle) or ``.safetensors`` file.

    Returns whatever the file holds (usually a dict); the tensors are on the CPU.
    Raises ``CheckpointNotFoundError``, ``CheckpointReadError`` or ``UnsafeCheckpointError``.
    """
    path = os.fspath(path)
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
    from safetensors.torch import save_file
    tensors = {k: v.contiguous() for k, v in obj['state_dict'].items()}
    save_file(tensors, path, metadata={SAFETENSORS_META_KEY: json.dumps(obj.get('meta', {}))})


def write_atomic(obj: Any, path: str, force: bool = False,
                 saver: Optional[Callable[[Any, str], None]] = None) -> None:
    """Write ``obj`` to ``path`` all at once: a temporary file in the same folder, then
    ``os.replace``. On any failure nothing is left behind and an existing file is untouched.

    ``.safetensors`` paths take ``{'state_dict': ..., 'meta': ...}`` and store ``meta`` as JSON
    metadata; every other path is written with ``torch.save``. Raises ``OutputExistsError`` when
    ``path`` exists and ``force`` is False.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise OutputExistsError(f'{path} already exists; pass --force (force=True) to overwrite '
                                f'it or choose another output path.')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f'cannot write {path}: folder {folder} does not exist; create it '
                              f'first.')
    if saver is None:
        saver = _write_safetensors if path.endswith('.safetensors') else torch.save
    try:
        replace_file(path, lambda tmp: saver(obj, tmp), overwrite=force)
    except FileExistsError:  # appeared while we were writing
        raise OutputExistsError(f'{path} appeared while writing; pass --force to overwrite '
                                f'it.') from None
    except OSError as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f'cannot write {path} ({error.strerror or error}); check the '
                              f'folder and free disk space.') from None
