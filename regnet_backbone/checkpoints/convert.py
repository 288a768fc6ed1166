"""Conversion between checkpoint layouts, in memory.

Import (theirs -> ours): unwrap the file (:mod:`.state_dict`), keep the backbone's tensors (BN running statistics and
``num_batches_tracked`` included), drop the classifier, rename with the layout's table, put the
first conv in the wanted channel order, read the architecture off the shapes and check that every
tensor of that architecture is present with the right shape.
Export (ours -> theirs) is the same table read backwards (:mod:`.files`, which also writes
converted files); loading into a model is :mod:`.pretrained`.

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

from ..models.backbone import CHANNEL_ORDERS
from .architecture import Architecture, expected_shapes, infer_architecture
from .errors import CheckpointError, NotRegNetError, UnknownFormatError
from .formats import (EXTENSION_KEY, OURS, KeyLayout, detect_layout, get_layout,
                      unmatched_keys)
from .io import read_checkpoint
from .state_dict import (BACKBONE_PREFIX, Mismatch, Shapes, compare, model_state_dict,
                         select_prefix, shapes)

#: What converted checkpoints expect: RGB, 0-255, these per-channel statistics.
RGB_MEAN = (123.675, 116.28, 103.53)
RGB_STD = (58.395, 57.12, 57.375)

#: Bumped when the layout of converted files changes.
FORMAT_VERSION = 1
STEM_WEIGHT = 'stem.conv.weight'


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
        partial: after a deliberate partial load (``strict=False``), what did not load.
    """
    state_dict: Dict[str, torch.Tensor]
    architecture: Architecture
    source_format: str
    dropped: List[str] = field(default_factory=list)
    filled: List[str] = field(default_factory=list)
    source_meta: dict = field(default_factory=dict)
    partial: Optional[Mismatch] = None
    channel_order: str = 'RGB'
    native_order: str = 'RGB'

    @property
    def arch(self) -> Optional[str]:
        """The preset name of the architecture, or None for a custom one."""
        return self.architecture.preset


def flip_first_conv(state_dict: Dict[str, torch.Tensor], key: str) -> None:
    """Reverse the first conv's input channels in place (BGR <-> RGB)."""
    weight = state_dict[key]
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise NotRegNetError(f'the first conv {key} has shape {list(weight.shape)}; swapping '
                             f'BGR and RGB needs 3 input channels.')
    state_dict[key] = weight.flip(1).contiguous()


def check_tensors(state_dict: Dict[str, torch.Tensor], expected: Shapes, what: str,
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
    mismatch = compare(shapes(state_dict), expected)
    if mismatch:
        raise NotRegNetError(f'the tensors do not form {what}: {mismatch.summary()}; {cause}.')
    return filled


def parse_channel_order(order: Optional[str], what: str = 'channel_order') -> Optional[str]:
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
        return parse_channel_order(order or 'RGB', "the checkpoint's meta channel_order")
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
            channel_order: Optional[str] = 'RGB',
            prefix: Optional[str] = None) -> ConvertedCheckpoint:
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
        prefix: keep only the tensors under this name prefix (``'backbone.'``); None: those
            under ``'backbone.'`` when some names have it (a detector or classifier), else all.
    Raises ``UnknownFormatError``/``AmbiguousFormatError`` for names that fit no/several layouts
    and ``NotRegNetError`` for shapes that are not a RegNet.
    """
    state_dict = model_state_dict(obj)
    meta = dict(obj['meta']) if isinstance(obj, Mapping) and isinstance(
        obj.get('meta'), Mapping) else {}
    if prefix is None and any(k.startswith(BACKBONE_PREFIX) for k in state_dict):
        prefix = BACKBONE_PREFIX
    dropped = []
    if prefix:
        dropped = [k for k in state_dict if not k.startswith(prefix)]
        state_dict = select_prefix(state_dict, prefix)
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
    wanted = parse_channel_order(channel_order)
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


def read_converted(path: str, src: str = 'auto', check: bool = True,
                   prefix: Optional[str] = None,
                   channel_order: Optional[str] = 'RGB') -> ConvertedCheckpoint:
    """Read the checkpoint at ``path`` safely and :func:`convert` it, in memory."""
    return convert(read_checkpoint(path), src=src, check=check, channel_order=channel_order,
                   prefix=prefix)
