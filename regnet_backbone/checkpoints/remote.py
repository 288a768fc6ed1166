"""Model-zoo names and URLs to local files, resolved the way mmengine's ``CheckpointLoader`` does.

``open-mmlab://`` / ``openmmlab://``, ``mmcls://`` and ``torchvision://`` (with its old alias
``modelzoo://``) are looked up in mmengine's own tables (``open-mmlab`` includes the user's
``$MMENGINE_HOME/open_mmlab.json``); ``http://`` and ``https://`` are taken as they are. Downloads
land in the cache mmengine and torchvision share, ``<torch.hub.get_dir()>/checkpoints``, so each
file is fetched once.
"""
import difflib
import os
import sys
from http.client import HTTPException
from urllib.parse import urlparse

import torch

from .errors import CheckpointNotFoundError, CheckpointReadError

#: Model-zoo prefix -> the ``mmengine.runner.checkpoint`` function that returns its {name: URL}.
ZOO_TABLES = {'open-mmlab': 'get_external_models', 'openmmlab': 'get_external_models',
              'mmcls': 'get_mmcls_models', 'torchvision': 'get_torchvision_models',
              'modelzoo': 'get_torchvision_models'}
SUPPORTED_PREFIXES = ', '.join(f'{scheme}://' for scheme in (*ZOO_TABLES, 'http', 'https'))


def _zoo_url(scheme: str, name: str) -> str:
    """The URL (or, for open-mmlab, possibly a path under ``MMENGINE_HOME``) of a zoo name."""
    # Imported here: mmengine.runner pulls in the whole Runner, which local files never need.
    from mmengine.runner import checkpoint as mmengine_checkpoint
    table = getattr(mmengine_checkpoint, ZOO_TABLES[scheme])()
    if scheme in ('open-mmlab', 'openmmlab'):  # mmengine renames old open-mmlab names only
        name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    if name not in table:
        close = difflib.get_close_matches(name, table, n=1) or difflib.get_close_matches(
            name.lower(), table, n=1)
        hint = (f'did you mean {scheme}://{close[0]}?' if close else
                f'use a name from mmengine.runner.checkpoint.{ZOO_TABLES[scheme]}().')
        raise CheckpointNotFoundError(f'{scheme}://{name} is not a known {scheme} model; {hint}')
    url = table[name]
    if url.startswith(('http://', 'https://')):
        return url
    path = os.path.join(mmengine_checkpoint._get_mmengine_home(), url)  # as load_from_openmmlab
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f'{scheme}://{name} maps to {path}, which does not exist; '
                                      f'put the file there or fix MMENGINE_HOME/open_mmlab.json.')
    return path


def _hash_prefix(filename: str):
    """The sha256 prefix torch.hub's naming convention embeds (``name-<sha256[:8+]>.ext``).

    Fewer than 8 hex digits is a version number, not a hash: HASH_REGEX alone reads pycls's
    ``RegNetX-3.2GF_dds_8gpu.pyth`` as hash ``3``.
    """
    match = torch.hub.HASH_REGEX.search(filename)
    return match.group(1) if match and len(match.group(1)) >= 8 else None


def fetch(name: str) -> str:
    """The local file for a checkpoint path, model-zoo name or URL, downloading it once.

    Names without ``://`` are returned unchanged. A URL's file is cached as
    ``<torch.hub.get_dir()>/checkpoints/<basename of the URL path>`` and, when that name carries a
    sha256 prefix, checked against it; a cached file is used without any network access.

    Raises:
        CheckpointNotFoundError: unsupported prefix, unknown zoo name, unreachable URL, HTTP error.
        CheckpointReadError: the download does not match the sha256 prefix in its file name.
    """
    scheme, sep, rest = name.partition('://')
    if not sep:
        return name
    if scheme in ZOO_TABLES:
        url = _zoo_url(scheme, rest)
        if not url.startswith(('http://', 'https://')):
            return url
    elif scheme in ('http', 'https'):
        url = name
    else:
        raise CheckpointNotFoundError(f'{name}: unsupported prefix {scheme}://; use a local file '
                                      f'or one of {SUPPORTED_PREFIXES}.')
    filename = os.path.basename(urlparse(url).path)
    if not filename:
        raise CheckpointNotFoundError(f'{url} names no file; pass the URL of the checkpoint file.')
    path = os.path.join(torch.hub.get_dir(), 'checkpoints', filename)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # torch writes a temporary file and renames it when complete, or deletes it on any error. A
    # body cut short is an error only with a hash: http.client ends such a read without raising.
    try:
        torch.hub.download_url_to_file(url, path, hash_prefix=_hash_prefix(filename),
                                       progress=sys.stderr.isatty())
    except RuntimeError as error:  # torch.hub's only RuntimeError: the hash check
        raise CheckpointReadError(
            f'{url}: the download does not match the sha256 prefix in its name ({error}); '
            f'download it yourself, check it and pass the local file.') from None
    except (OSError, HTTPException) as error:  # URLError and HTTPError are OSErrors
        raise CheckpointNotFoundError(
            f'cannot download {url} ({error}); check the URL and the network, or download it '
            f'yourself and pass the local file.') from None
    return path
