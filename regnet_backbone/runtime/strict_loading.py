"""Strict loading. mmengine loads ``load_from``, ``--resume`` and tools/test.py's checkpoint with
``strict=False``: a file of another model loads the few tensors that match and the run goes on
with a randomly initialised network. These functions refuse such a file with one line (how many
tensors are missing, unexpected or misshapen, and what the file holds). The opt-in for a
deliberate partial load is the config key ``partial_load=True``.

:class:`regnet_backbone.runtime.runner.RegNetRunner` applies them inside the engine, on the
model it built and the file it read; :func:`regnet_backbone.runtime.engine.train` checks the
files a run names before it starts.
"""
import os
import os.path as osp
from typing import Any, List, Optional

from ..checkpoints.architecture import Architecture
from ..checkpoints.errors import CheckpointError
from ..checkpoints.io import read_checkpoint
from ..checkpoints.model import describe_contents, regnet_prefixes, translate_model_state_dict
from ..checkpoints.state_dict import (Shapes, compare, is_runner_checkpoint, model_state_dict,
                                      shapes)
from ..design.presets import resolve_arch
from ..models.backbone import DEFAULT_ARCH
from .config import PARTIAL_LOAD, PRETRAINED_DOC, backbone_cfg, pretrained_entries
from .errors import CheckpointRefusedError, PretrainedNotFoundError
from .hooks.atomic_checkpoint import LAST_CHECKPOINT, read_last_checkpoint


def _arch_name(backbone: dict) -> str:
    arch = backbone.get('arch', DEFAULT_ARCH)
    return arch if isinstance(arch, str) else 'custom'


def check_pretrained_exists(cfg) -> None:
    """Raise :func:`pretrained_not_found`'s error, before anything is built or written, when the
    backbone's ``init_cfg`` names a local file that does not exist (no file is read here: the
    Runner reads it once, when it initialises the weights)."""
    backbone = backbone_cfg(cfg)
    for entry in pretrained_entries(backbone) if backbone is not None else []:
        path = str(entry.get('checkpoint'))
        if '://' not in path and not osp.isfile(path):
            raise pretrained_not_found(cfg)


def pretrained_not_found(cfg) -> PretrainedNotFoundError:
    """The error for a backbone ``init_cfg`` naming a missing file: where it was looked for,
    how to get and convert the weights (``tools/convert_pretrained.py``, ``docs/pretrained.md``),
    or how to train from scratch."""
    backbone = backbone_cfg(cfg) or {}
    entries = pretrained_entries(backbone)
    path = str(entries[0].get('checkpoint')) if entries else '?'
    arch = _arch_name(backbone)
    here = path if osp.isabs(path) else f'{path} (under {os.getcwd()})'
    target = path if arch in osp.basename(path) or arch == 'custom' else \
        f'checkpoints/{arch}_rgb.pth'
    also = '' if target == path else \
        f' and pass --cfg-options model.backbone.init_cfg.checkpoint={target}'
    return PretrainedNotFoundError(
        f'pretrained backbone checkpoint not found: {here}, named by '
        f'model.backbone.init_cfg. Get the ImageNet weights of {arch} (sources: '
        f'{PRETRAINED_DOC}) and convert them with `python tools/convert_pretrained.py '
        f'SOURCE {target}`{also}; or train from scratch with --cfg-options '
        f'model.backbone.init_cfg=None.')


def resume_checkpoint(cfg) -> Optional[str]:
    """The checkpoint a configured run will resume from: ``load_from`` with ``resume``, or
    what ``last_checkpoint`` in the work dir names (``resume='auto'``); None for a fresh run.

    Raises :class:`CheckpointRefusedError` when ``last_checkpoint`` names a file that no longer
    exists (mmengine would fail with a traceback).
    """
    if not cfg.get('resume'):
        return None
    if cfg.get('load_from'):
        return cfg.load_from
    named = read_last_checkpoint(cfg.work_dir)
    if named and not osp.isfile(named):
        pointer = osp.join(cfg.work_dir, LAST_CHECKPOINT)
        raise CheckpointRefusedError(
            f'{pointer} names {named}, which no longer exists; resume from an existing '
            f'checkpoint with --resume PATH, or delete {pointer} to start over.')
    return named


def _describe_backbone(cfg) -> Optional[str]:
    backbone = backbone_cfg(cfg)
    if backbone is None:
        return None
    try:
        spec = resolve_arch(backbone.get('arch', DEFAULT_ARCH))
    except (ValueError, TypeError):
        return None
    return Architecture(spec, stem_channels=backbone.get('stem_channels', 32),
                        in_channels=backbone.get('in_channels', 3)).describe()


def read_model_checkpoint(path: str):
    """Read ``path`` once, weights-only with the Runner allow-list; one-line errors."""
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointRefusedError(f'{e}') from None


def check_state_fits(cfg, obj: Any, path: str, model_shapes: Shapes, *,
                     resume: bool = False) -> List[str]:
    """Refuse a checkpoint (``obj``, read from ``path``) that mmengine would load only partly
    into a model of ``model_shapes`` (``cfg.model``): compares the names and shapes of
    :func:`~regnet_backbone.checkpoints.state_dict.model_state_dict`, with mmdet-``RegNet``
    backbone names counted as they will load (translated by ``RegNetCheckpointHook``).

    Args:
        resume: the file must also be a Runner checkpoint (optimizer, schedulers, message hub).

    Returns warning lines (empty unless ``partial_load=True`` let a misfit through).
    Raises :class:`CheckpointRefusedError` with one line otherwise.
    """
    try:
        if resume and not is_runner_checkpoint(obj):
            raise CheckpointRefusedError(
                f'{path} is not a training checkpoint (no optimizer, schedulers or meta: '
                f'tools/train.py writes those in the work dir); to start training from its '
                f'weights use --cfg-options load_from={path} without --resume.')
        state_dict = model_state_dict(obj)
    except CheckpointError as e:
        raise CheckpointRefusedError(f'{e}') from None
    state_dict, _ = translate_model_state_dict(state_dict, prefixes=regnet_prefixes(model_shapes))
    mismatch = compare(shapes(state_dict), model_shapes)
    if not mismatch:
        return []
    held = describe_contents(state_dict)
    model_backbone = _describe_backbone(cfg)
    facts = f'{path} does not fit the model: {mismatch.summary()}.'
    if held:
        facts += f' The file holds {held}'
        facts += f'; the model\'s backbone is {model_backbone}.' if model_backbone else '.'
    if cfg.get(PARTIAL_LOAD):
        return [f'partial_load=True: loading only what fits. {facts}']
    if held and held.startswith('a bare RegNet backbone'):
        fix = ('backbone weights go into model.backbone.init_cfg=dict(type=\'Pretrained\', '
               f'checkpoint={path}), then train')
    else:
        fix = 'use a checkpoint written for this config'
    raise CheckpointRefusedError(f'{facts} Nothing was loaded: {fix}, or add --cfg-options '
                                 f'{PARTIAL_LOAD}=True to load only what fits on purpose.')
