"""Read a RegNet's architecture off the tensor shapes of a state dict in our layout.

Stage widths come from each block's last 1x1 conv, bottleneck widths from its first, group widths
from the 3x3 conv's input channels per group (``conv2.weight.shape[1]``), and the SE width from
``se.fc1``. Strides and dilations leave no trace in the shapes; the published models use stride 2
in the first block of every stage, which is what ``expected_shapes`` builds.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from ..design.presets import find_preset
from ..design.space import AnyNetSpec
from ..models.backbone import RegNetBackbone
from .errors import NotRegNetError
from .state_dict import Shapes, shapes

_BLOCK_KEY = re.compile(r'layer(\d+)\.(\d+)\.')
#: SE ratios tried first when reading a squeeze width back (0.25 is RegNetY's).
_COMMON_SE_RATIOS = (0.25, )


@dataclass(frozen=True)
class Architecture:
    """A RegNet as far as its weights pin it down.

    Attributes:
        spec: per-stage depths, widths, group widths, bottleneck ratios and SE ratio.
        stem_channels: output channels of the 3x3 stem (32 in every published model).
        in_channels: input image channels (3).
    """
    spec: AnyNetSpec
    stem_channels: int = 32
    in_channels: int = 3

    @property
    def preset(self) -> Optional[str]:
        """The preset with this spec (``regnetx_3.2gf``, ...), or None for a custom network."""
        if self.stem_channels != 32 or self.in_channels != 3:
            return None
        return find_preset(self.spec)

    def describe(self) -> str:
        """One line for error messages: preset name, depths, widths, group widths, SE."""
        s = self.spec
        text = (f'depths {list(s.depths)}, widths {list(s.widths)}, group widths '
                f'{list(s.group_widths)}')
        if any(b != 1 for b in s.bottleneck_ratios):
            text += f', bottleneck ratios {list(s.bottleneck_ratios)}'
        text += f', SE ratio {s.se_ratio:g}' if s.has_se else ', no SE'
        if self.stem_channels != 32:
            text += f', stem {self.stem_channels}'
        if self.in_channels != 3:
            text += f', {self.in_channels} input channels'
        name = self.preset
        return f'{name} ({text})' if name else f'a custom RegNet ({text})'

    def to_meta(self) -> dict:
        """JSON-friendly fields for a checkpoint's ``meta``."""
        s = self.spec
        return {
            'depths': list(s.depths), 'widths': list(s.widths),
            'group_widths': list(s.group_widths),
            'bottleneck_ratios': list(s.bottleneck_ratios), 'se_ratio': s.se_ratio,
        }


def _shape(state_dict: Mapping, key: str) -> Tuple[int, ...]:
    try:
        return tuple(state_dict[key].shape)
    except KeyError:
        raise NotRegNetError(f'tensor {key!r} is missing, so this is not a complete RegNet '
                             f'backbone; pass the full checkpoint.') from None


def _se_ratio(se_widths: List[Tuple[int, int]]) -> float:
    """The SE ratio r with round(w_in * r) equal to every block's squeeze width."""
    candidates = list(_COMMON_SE_RATIOS) + [se / w_in for w_in, se in se_widths]
    for ratio in candidates:
        if 0 < ratio < 1 and all(int(round(w_in * ratio)) == se for w_in, se in se_widths):
            return ratio
    raise NotRegNetError(
        f'the SE widths {[se for _, se in se_widths]} follow no single ratio of the block input '
        f'widths {[w for w, _ in se_widths]}; this is not a RegNetY this backbone can build.')


def infer_architecture(state_dict: Mapping) -> Architecture:
    """Read the architecture of a state dict in our layout from its tensor shapes.

    Raises ``NotRegNetError`` (naming the offending tensor) when the shapes cannot be a RegNet:
    a 7x7 stem (ResNet), a missing tensor, a non-3x3 middle conv, SE in only some blocks.
    """
    stem = _shape(state_dict, 'stem.conv.weight')
    if len(stem) != 4 or stem[2:] != (3, 3):
        raise NotRegNetError(f'not a RegNet: the stem conv has shape {list(stem)} but a RegNet '
                             f'stem is a 3x3 conv (a 7x7 stem means a ResNet); pass a RegNet '
                             f'checkpoint.')
    blocks: Dict[int, set] = {}
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if not blocks:
        raise NotRegNetError('the checkpoint has a stem but no stages; pass a full backbone.')
    stages = sorted(blocks)
    if stages != list(range(1, len(stages) + 1)):
        raise NotRegNetError(f'stages {stages} are not numbered 1..{len(stages)}; the checkpoint '
                             f'is incomplete.')
    depths, widths, groups, ratios, se_widths = [], [], [], [], []
    w_in = stem[0]
    for stage in stages:
        ids = sorted(blocks[stage])
        if ids != list(range(len(ids))):
            raise NotRegNetError(f'stage {stage} has blocks {ids}, not 0..{len(ids) - 1}; the '
                                 f'checkpoint is incomplete.')
        prefix = f'layer{stage}.0.'
        conv1 = _shape(state_dict, prefix + 'conv1.weight')
        conv2 = _shape(state_dict, prefix + 'conv2.weight')
        conv3 = _shape(state_dict, prefix + 'conv3.weight')
        if conv2[2:] != (3, 3):
            raise NotRegNetError(f'{prefix}conv2 has shape {list(conv2)}, not a 3x3 conv; this '
                                 f'is not a RegNet.')
        width, w_b = conv3[0], conv1[0]
        depths.append(len(ids))
        widths.append(width)
        groups.append(conv2[1])
        ratios.append(w_b / width)
        for block in ids:
            key = f'layer{stage}.{block}.se.fc1.weight'
            if key in state_dict:
                se_widths.append((w_in if block == 0 else width, state_dict[key].shape[0]))
        w_in = width
    num_blocks = sum(depths)
    if se_widths and len(se_widths) != num_blocks:
        raise NotRegNetError(f'only {len(se_widths)} of {num_blocks} blocks have SE; a RegNetY '
                             f'has it in every block.')
    se_ratio = _se_ratio(se_widths) if se_widths else 0.0
    try:
        spec = AnyNetSpec(depths=tuple(depths), widths=tuple(widths), group_widths=tuple(groups),
                          bottleneck_ratios=tuple(ratios), se_ratio=se_ratio)
    except ValueError as error:
        raise NotRegNetError(f'the tensor shapes are not a valid AnyNet ({error})') from None
    return Architecture(spec=spec, stem_channels=stem[0], in_channels=stem[1])


def expected_shapes(arch: Architecture) -> Shapes:
    """Names -> shapes of every tensor of a ``RegNetBackbone`` with BN for ``arch`` (stride 2 in
    each stage's first block), read off the module built on the meta device (no memory, no
    initialisation), so that it can never disagree with the module."""
    with torch.device('meta'):
        model = RegNetBackbone(arch.spec, in_channels=arch.in_channels,
                               stem_channels=arch.stem_channels)
    return shapes(model)
