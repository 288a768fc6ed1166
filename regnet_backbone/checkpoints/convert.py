"""Conversion between checkpoint layouts, in memory.

Import (theirs -> ours): unwrap the file, keep the backbone's tensors (BN running statistics and
``num_batches_tracked`` included), drop the classifier, rename with the layout's table, put the
first conv in the wanted channel order, read the architecture off the shapes and check that every
tensor of that architecture is present with the right shape.
Export (ours -> theirs) is the same table read backwards (:mod:`.files`, which also writes
converted files); loading into a model is :mod:`.loading`.

Channel order: every file has a *native* order, the colour order its first conv expects (pycls
and mmdet: BGR; torchvision and timm: RGB; our files: ``meta['channel_order']``). Both orders use
the ImageNet statistics below on the 0-255 scale (in that order), so reversing the first conv's
input channels is all a change of order needs. ``convert`` and ``load_pretrained`` deliver the
order asked for, or the native one when none is asked for (``channel_order=None``).
Whole-model checkpoints (an mmdet detector or mmpretrain classifier built on mmdet's ``RegNet``)
are translated in :mod:`.model`: backbone tensors renamed, the rest kept.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .architecture import Architecture, expected_shapes, infer_architecture
from .errors import CheckpointError, NotRegNetError, UnknownFormatError
from .fit import compare
from .formats import (EXTENSION_KEY, OURS, KeyLayout, detect_layout, get_layout,
                      unmatched_keys)
from .io import read_checkpoint

#: What converted checkpoints expect: RGB, 0-255, these per-channel statistics.
RGB_MEAN = (123.675, 116.28, 103.53)
RGB_STD = (58.395, 57.12, 57.375)
#: The colour orders a first conv can expect.
CHANNEL_ORDERS = ('RGB', 'BGR')

#: Bumped when the layout of converted files changes.
FORMAT_VERSION = 1
#: Dict keys under which checkpoints nest their state dict, tried in this order.
_WRAPPERS = ('state_dict', 'model_state', 'model')
STEM_WEIGHT = 'stem.conv.weight'


@dataclass
class PartialLoad:
    """What a deliberate partial load (``strict=False``) left out."""
    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    wrong_shape: List[str]


@dataclass
class ConvertedCheckpoint:
    """A checkpoint in our layout, ready to load into ``RegNetBackbone``.

    Attributes:
        state_dict: our tensor names -> tensors; the first conv expects RGB.
        architecture: what the shapes say the network is (``.preset`` names it).
        source_format: 'pycls', 'torchvision', 'timm', 'mmdet' or 'regnet_backbone'.
        dropped: source tensor names left out (classifier head, non-backbone modules).
        filled: our tensor names the source lacked and that were created (``num_batches_tracked``).
        source_meta: the source file's ``meta`` dict, if it had one.
        channel_order: the colour order ``state_dict``'s first conv expects, 'RGB' or 'BGR'.
        native_order: the order the source file's first conv expected.
    """
    state_dict: Dict[str, torch.Tensor]
    architecture: Architecture
    source_format: str
    dropped: List[str] = field(default_factory=list)
    filled: List[str] = field(default_factory=list)
    source_meta: dict = field(default_factory=dict)
    partial: Optional[PartialLoad] = None
    channel_order: str = 'RGB'
    native_order: str = 'RGB'

    @property
    def arch(self) -> Optional[str]:
        """The preset name of the architecture, or None for a custom one."""
        return self.architecture.preset


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj: Any) -> Tuple[Dict[str, torch.Tensor], dict, List[str]]:
    """Find the state dict inside a loaded checkpoint and strip wrapper prefixes.

    Accepts a plain state dict, pycls's ``{'model_state': ...}``, mmengine's
    ``{'state_dict': ..., 'meta': ...}`` and ``{'model': ...}``. A ``module.`` prefix on every
    key (DataParallel) is removed; when some keys start with ``backbone.`` (a detector or
    classifier), only those are kept.
    Returns (state dict, meta dict, dropped key names).
    """
    meta = {}
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        if isinstance(obj.get('meta'), Mapping):
            meta = dict(obj['meta'])
        for key in _WRAPPERS:
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        else:
            keys = ', '.join(map(str, list(obj)[:6])) if isinstance(obj, Mapping) else ''
            raise UnknownFormatError(
                f'found no state dict in the checkpoint (top-level keys: {keys or "none"}); '
                f'expected tensors at the top level or under {", ".join(_WRAPPERS)}.')
    if not _is_state_dict(obj):
        raise UnknownFormatError(f'the checkpoint holds a {type(obj).__name__}, not a dict of '
                                 f'tensors; pass a model checkpoint.')
    state_dict = dict(obj)
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    dropped = []
    if any(k.startswith('backbone.') for k in state_dict):
        dropped = [k for k in state_dict if not k.startswith('backbone.')]
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items()
                      if k.startswith('backbone.')}
    return state_dict, meta, dropped


def flip_first_conv(state_dict: Dict[str, torch.Tensor], key: str) -> None:
    """Reverse the first conv's input channels in place (BGR <-> RGB)."""
    weight = state_dict[key]
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise NotRegNetError(f'the first conv {key} has shape {list(weight.shape)}; swapping '
                             f'BGR and RGB needs 3 input channels.')
    state_dict[key] = weight.flip(1).contiguous()


def check_tensors(state_dict: Dict[str, torch.Tensor],
                  expected: Mapping[str, Tuple[int, ...]],
                  what: str,
                  cause: str = 'the checkpoint is incomplete or not a RegNet') -> List[str]:
    """Make ``state_dict`` hold exactly the ``expected`` names and shapes.

    A missing ``num_batches_tracked`` (older checkpoints) is created as 0 and its name returned;
    anything else missing, extra or misshapen raises ``NotRegNetError`` that names ``what``.
    """
    filled = []
    for key in expected:
        if key not in state_dict and key.endswith('.num_batches_tracked'):
            state_dict[key] = torch.tensor(0, dtype=torch.long)
            filled.append(key)
    mismatch = compare(state_dict, expected)
    if mismatch:
        raise NotRegNetError(f'the tensors do not form {what}: {mismatch.summary()}; {cause}.')
    return filled


def check_channel_order(order: Optional[str], what: str = 'channel_order') -> Optional[str]:
    """``order`` upper-cased if it is 'RGB', 'BGR' (or None); ``CheckpointError`` otherwise."""
    if order is None:
        return None
    if not isinstance(order, str) or order.upper() not in CHANNEL_ORDERS:
        raise CheckpointError(f"{what}={order!r} is not a channel order; use 'RGB' or 'BGR' "
                              f"(or leave it unset to keep the weights' own order).")
    return order.upper()


def native_order(layout: KeyLayout, meta: Mapping) -> str:
    """The channel order a file of ``layout`` with ``meta`` expects (ours: its meta says)."""
    if layout.name == OURS:
        # A training checkpoint records its backbone's order by prefix (RegNetCheckpointHook).
        recorded = meta.get('regnet_channel_order')
        order = meta.get('channel_order') or (
            recorded.get('backbone.') if isinstance(recorded, Mapping) else None)
        return check_channel_order(order or 'RGB', "the checkpoint's meta channel_order")
    return layout.channel_order


def channel_statistics(order: str) -> Tuple[List[float], List[float]]:
    """The ImageNet mean and std (0-255 scale) in ``order``."""
    if order == 'BGR':
        return list(RGB_MEAN[::-1]), list(RGB_STD[::-1])
    return list(RGB_MEAN), list(RGB_STD)


def _split_extensions(state_dict: Dict[str, torch.Tensor]):
    """(the RegNet's own tensors, the DCN-offset and plugin tensors) of a state dict in ours."""
    core = {k: v for k, v in state_dict.items() if not EXTENSION_KEY.match(k)}
    return core, {k: v for k, v in state_dict.items() if k not in core}


def convert(obj: Any, src: str = 'auto', check: bool = True,
            channel_order: Optional[str] = 'RGB') -> ConvertedCheckpoint:
    """Convert a loaded checkpoint (any supported layout) to ours, in memory.

    Args:
        obj: what ``read_checkpoint`` returned (a state dict or a wrapper dict).
        src: 'auto' to detect the layout, or 'pycls', 'torchvision', 'timm', 'mmdet',
            'regnet_backbone'.
        check: require exactly the tensors of the inferred architecture (stride 2 per stage);
            ``load_pretrained`` checks against the model instead. DCN offsets and plugins
            (mmdet's ``RegNet`` extensions) are kept and left to that check.
        channel_order: the colour order the returned first conv expects ('RGB', 'BGR'), or
            None for the file's native order.
    Raises ``UnknownFormatError``/``AmbiguousFormatError`` for names that fit no/several layouts
    and ``NotRegNetError`` for shapes that are not a RegNet.
    """
    state_dict, meta, dropped = extract_state_dict(obj)
    if src == 'auto':
        layout = detect_layout(state_dict)
    else:
        layout = get_layout(src)
        stray = unmatched_keys(layout, state_dict)
        if stray:
            try:
                guess = f'; they look like {detect_layout(state_dict).name} (try --src auto)'
            except UnknownFormatError:
                guess = ''
            raise UnknownFormatError(
                f'{len(stray)} of {len(state_dict)} tensor names are not part of the {layout.name} '
                f'layout (e.g. {", ".join(stray[:3])}){guess}.')
    wanted = check_channel_order(channel_order)
    native = native_order(layout, meta)
    ours: Dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if layout.is_head(key):
            dropped.append(key)
            continue
        name = layout.to_ours(key)
        if name in ours:
            raise UnknownFormatError(f'two tensors map to {name!r} (the second is {key!r}); the '
                                     f'checkpoint names a block twice, so it is not a valid '
                                     f'{layout.name} file.')
        ours[name] = tensor
    if STEM_WEIGHT not in ours:
        raise NotRegNetError('the checkpoint has no stem conv; pass a full RegNet backbone.')
    order = wanted or native
    if order != native:
        flip_first_conv(ours, STEM_WEIGHT)
    architecture = infer_architecture(ours)
    filled = []
    if check:
        core, extensions = _split_extensions(ours)
        filled = check_tensors(core, expected_shapes(architecture),
                               f'the RegNet its shapes describe, {architecture.describe()}')
        ours = {**core, **extensions}
    return ConvertedCheckpoint(state_dict=ours, architecture=architecture,
                               source_format=layout.name, dropped=dropped, filled=filled,
                               source_meta=meta, channel_order=order, native_order=native)


def select_prefix(obj: Any, prefix: str) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint whose names start with ``prefix``, prefix removed.

    The semantics of mmengine's ``init_cfg=dict(type='Pretrained', prefix='backbone.')``, used
    to take a backbone out of a detector's or classifier's checkpoint.
    """
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in _WRAPPERS:
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        raise UnknownFormatError('found no state dict in the checkpoint; pass a model '
                                 'checkpoint.')
    keys = [k[len('module.'):] if k.startswith('module.') else k for k in obj]
    picked = {k[len(prefix):]: v for k, v in zip(keys, obj.values()) if k.startswith(prefix)}
    if not picked:
        raise UnknownFormatError(f'no tensor name starts with prefix {prefix!r} (e.g. '
                                 f'{", ".join(keys[:3])}); fix the prefix in init_cfg.')
    return picked


def load_checkpoint(path: str, src: str = 'auto', check: bool = True,
                    prefix: Optional[str] = None,
                    channel_order: Optional[str] = 'RGB') -> ConvertedCheckpoint:
    """Read ``path`` safely and convert it to our layout in memory (see ``convert``).

    ``prefix``: keep only the tensors under this name prefix first (``'backbone.'``).
    """
    obj = read_checkpoint(path)
    if prefix:
        meta = obj.get('meta') if isinstance(obj, Mapping) else None
        obj = select_prefix(obj, prefix)
        if isinstance(meta, Mapping):  # keep the file's own channel order with its tensors
            obj = {'state_dict': obj, 'meta': dict(meta)}
    return convert(obj, src=src, check=check, channel_order=channel_order)
