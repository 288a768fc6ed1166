"""Strict loading. mmengine loads ``load_from``, ``--resume`` and tools/test.py's checkpoint with
``strict=False``: a file of another model loads the few tensors that match and the run goes on
with a randomly initialised network. These functions refuse such a file with one line (how many
tensors are missing, unexpected or misshapen, and what the file holds). The opt-in for a
deliberate partial load is the config key ``partial_load=True``.

:class:`regnet_backbone.runtime.runner.RegNetRunner` applies them inside the engine, on the
model it built and the file it read; the standalone checks here serve scripts and tests.
"""
import contextlib
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

from ..checkpoints.errors import CheckpointError, CheckpointNotFoundError as _MissingFile
from ..checkpoints.io import _history_buffer_method, runner_checkpoint_globals  # noqa: F401
from ..models.backbone import DEFAULT_ARCH
from .config import (PARTIAL_LOAD, PRETRAINED_DOC, _backbone, _log, _pretrained_entries,
                     _registries, codebase_of)
from .errors import CheckpointRefusedError, ConfigError, PretrainedNotFoundError
from .hooks.atomic_checkpoint import LAST_CHECKPOINT

def _arch_name(backbone: dict) -> str:
    arch = backbone.get('arch', DEFAULT_ARCH)
    return arch if isinstance(arch, str) else 'custom'


def check_pretrained(cfg) -> None:
    """Load the backbone's ``Pretrained`` checkpoint into a backbone built from the config: a
    standalone check (the Runner loads the file itself, see :mod:`.runner`).

    Raises :class:`PretrainedNotFoundError` (naming ``tools/convert_pretrained.py`` and
    ``docs/pretrained.md``) or :class:`CheckpointRefusedError`.
    """
    backbone = _backbone(cfg)
    if backbone is None or not _pretrained_entries(backbone):
        return
    from ..models import RegNetBackbone
    kwargs = {k: v for k, v in backbone.items() if k != 'type'}
    try:
        model = RegNetBackbone(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f'model.backbone: {e}') from None
    try:
        with _quiet_logs():
            model.init_weights()
    except _MissingFile:
        raise pretrained_not_found(cfg) from None
    except CheckpointError as e:
        raise CheckpointRefusedError(f'model.backbone.init_cfg: {e}') from None


def check_pretrained_exists(cfg) -> None:
    """Raise :func:`pretrained_not_found`'s error, before anything is built or written, when the
    backbone's ``init_cfg`` names a local file that does not exist (no file is read here: the
    Runner reads it once, when it initialises the weights)."""
    backbone = _backbone(cfg)
    for entry in _pretrained_entries(backbone) if backbone is not None else []:
        path = str(entry.get('checkpoint'))
        if '://' not in path and not osp.isfile(path):
            raise pretrained_not_found(cfg)


def pretrained_not_found(cfg) -> PretrainedNotFoundError:
    """The error for a backbone ``init_cfg`` naming a missing file: where it was looked for,
    how to get and convert the weights (``tools/convert_pretrained.py``, ``docs/pretrained.md``),
    or how to train from scratch."""
    backbone = _backbone(cfg) or {}
    entries = _pretrained_entries(backbone)
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


@contextlib.contextmanager
def _quiet_logs():
    """Keep the partial-load warning of a check out of the log (the real load repeats it)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(40)
    try:
        yield
    finally:
        logger.setLevel(level)


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
    pointer = osp.join(cfg.work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        named = f.read().strip()
    if named and not osp.isfile(named):
        raise CheckpointRefusedError(
            f'{pointer} names {named}, which no longer exists; resume from an existing '
            f'checkpoint with --resume PATH, or delete {pointer} to start over.')
    return named or None


def _model_shapes(cfg) -> Dict[str, Tuple[int, ...]]:
    """Names and shapes of the state dict of ``cfg.model`` (built once, weights untouched)."""
    from mmengine.registry import DefaultScope
    scope = codebase_of(cfg)
    MODELS = _registries(scope)[0]
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _describe_backbone(cfg) -> Optional[str]:
    backbone = _backbone(cfg)
    if backbone is None:
        return None
    from ..checkpoints import Architecture
    from ..design.presets import resolve_arch
    try:
        spec = resolve_arch(backbone.get('arch', DEFAULT_ARCH))
    except (ValueError, TypeError):
        return None
    return Architecture(spec, stem_channels=backbone.get('stem_channels', 32),
                        in_channels=backbone.get('in_channels', 3)).describe()


def check_checkpoint_fits(cfg, path: str, *, resume: bool = False,
                          shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                          what: Optional[str] = None) -> List[str]:
    """Refuse a checkpoint that mmengine would load only partly into ``cfg.model``.

    Args:
        path: the file (``load_from``, the resume checkpoint, tools/test.py's CHECKPOINT).
        resume: the file must also be a Runner checkpoint (optimizer, schedulers, message hub).
        shapes: the model's state dict shapes (default: build ``cfg.model`` once).
        what: how messages name the file (default: ``path``).

    Returns warning lines (empty unless ``partial_load=True`` let a misfit through).
    Raises :class:`CheckpointRefusedError` with one line otherwise.
    """
    obj = read_model_checkpoint(path)
    return check_state_fits(cfg, obj, path, resume=resume, shapes=shapes, what=what)


def read_model_checkpoint(path: str):
    """Read ``path`` once, weights-only with the Runner allow-list; one-line errors."""
    from ..checkpoints import read_checkpoint
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointRefusedError(f'{e}') from None


def check_state_fits(cfg, obj, path: str, *, resume: bool = False,
                     shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                     what: Optional[str] = None) -> List[str]:
    """:func:`check_checkpoint_fits` on a file already read (``obj``); mmdet-``RegNet`` backbone
    names count as they will load (translated by ``RegNetCheckpointHook``)."""
    from ..checkpoints import (compare, describe_contents, is_runner_checkpoint,
                               model_state_dict, regnet_prefixes, translate_model_state_dict)
    what = what or path
    try:
        if resume and not is_runner_checkpoint(obj):
            raise CheckpointRefusedError(
                f'{what} is not a training checkpoint (no optimizer, schedulers or meta: '
                f'tools/train.py writes those in the work dir); to start training from its '
                f'weights use --cfg-options load_from={path} without --resume.')
        state_dict = model_state_dict(obj)
    except CheckpointError as e:
        raise CheckpointRefusedError(f'{e}') from None
    shapes = shapes if shapes is not None else _model_shapes(cfg)
    # mmdet-RegNet names are translated on load (RegNetCheckpointHook): compare as translated.
    state_dict, _ = translate_model_state_dict(state_dict, prefixes=regnet_prefixes(shapes))
    mismatch = compare(state_dict, shapes)
    if not mismatch:
        return []
    held = describe_contents(state_dict)
    model_backbone = _describe_backbone(cfg)
    facts = f'{what} does not fit the model: {mismatch.summary()}.'
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


def check_loads(cfg) -> None:
    """Strict loading for a configured run: the checkpoint it resumes from or loads
    (``load_from``) must fit ``cfg.model``; warnings of ``partial_load=True`` are logged."""
    path = resume_checkpoint(cfg)
    resume = path is not None
    if not resume and cfg.get('load_from') and not cfg.get('resume'):
        path = cfg.load_from
    if path is None:
        return
    for line in check_checkpoint_fits(cfg, path, resume=resume):
        _log(line, level=logging.WARNING)
