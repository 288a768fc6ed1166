"""The RegNet rule (paper section 3.3): per-stage AnyNetX lists from (w0, wa, wm, d), in pure Python.

u_j = w0 + wa * j gives a continuous width per block; the quantized rule rounds it to w0 * wm**s_j,
then to a multiple of q = 8. Consecutive blocks of equal width form a stage. Nothing here imports
torch.
"""
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from ..errors import ArchitectureError
from .space import QUANT, ROUNDINGS, AnyNetSpec


def generate_block_widths(w0: float, wa: float, wm: float, depth: int,
                          q: int = QUANT) -> List[int]:
    """Per-block widths of the quantized linear rule.

    u_j = w0 + wa * j, s_j = round(log(u_j / w0) / log(wm)), w_j = q * round(w0 * wm**s_j / q).
    """
    if not (isinstance(depth, int) and depth >= 1):
        raise ArchitectureError(f'RegNet depth must be a positive integer, got {depth!r}.')
    if wa < 0:
        raise ArchitectureError(f'RegNet needs wa >= 0, got wa={wa}.')
    if w0 <= 0:
        raise ArchitectureError(f'RegNet needs w0 > 0, got w0={w0}.')
    if wm <= 1:
        raise ArchitectureError(f'RegNet needs wm > 1, got wm={wm}.')
    if w0 % q:
        raise ArchitectureError(f'RegNet needs w0 to be a multiple of q={q}, got w0={w0}.')
    widths = []
    for j in range(depth):
        s = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        widths.append(int(round(w0 * wm**s / q) * q))
    return widths


def group_blocks_into_stages(block_widths: Sequence[int]) -> Tuple[List[int], List[int]]:
    """Consecutive blocks of equal width form a stage: return (stage widths, stage depths)."""
    widths, depths = [], []
    for w in block_widths:
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(w)
            depths.append(1)
    return widths, depths


def _make_divisible_tv(value: float, divisor: int) -> int:
    """torchvision's rounding: half up, at least ``divisor``, never below 90% of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def adjust_widths_groups(widths: Sequence[int], bottleneck_ratios: Sequence[float],
                         group_widths: Sequence[int],
                         rounding: str = 'pycls') -> Tuple[List[int], List[int]]:
    """Make each stage's bottleneck width a multiple of its group width.

    The group width is capped at the bottleneck width, then the bottleneck width is rounded to a
    multiple of it (``rounding``: see ``ROUNDINGS``) and the stage width recomputed.
    Returns (widths, group widths).
    """
    if rounding not in ROUNDINGS:
        raise ArchitectureError(f'rounding must be one of {ROUNDINGS}, got {rounding!r}.')
    out_w, out_g = [], []
    for w, b, g in zip(widths, bottleneck_ratios, group_widths):
        w_b = int(w * b)
        g = min(g, w_b)
        if rounding == 'pycls':
            w_b = int(round(w_b / g) * g)
        else:
            w_b = _make_divisible_tv(w_b, g)
        out_w.append(int(w_b / b))
        out_g.append(g)
    return out_w, out_g


@dataclass(frozen=True)
class RegNetParams:
    """The parameters of one RegNet (paper notation).

    Attributes:
        w0: initial width (> 0, multiple of 8). wa: slope (>= 0). wm: width multiplier (> 1).
        depth: total blocks. group_width: channels per group. bottleneck_ratio: bottleneck
            width / block width, w_b / w (pycls `BOT_MUL`, mmdet `bot_mul`): the inverse of the
            paper's b = w / w_b, so the paper's b = 4 is `bottleneck_ratio=0.25`.
        se_ratio: 0 for RegNetX, 0.25 for RegNetY. rounding: 'pycls' or 'torchvision'.
    """
    w0: int
    wa: float
    wm: float
    depth: int
    group_width: int
    bottleneck_ratio: float = 1.0
    se_ratio: float = 0.0
    rounding: str = 'pycls'

    def to_anynet(self) -> AnyNetSpec:
        """Generate the per-stage AnyNet lists (widths made compatible with group widths)."""
        if self.group_width < 1:
            raise ArchitectureError(f'group_width must be >= 1, got {self.group_width}.')
        if self.bottleneck_ratio <= 0:
            raise ArchitectureError(f'bottleneck_ratio must be > 0, got {self.bottleneck_ratio}.')
        block_widths = generate_block_widths(self.w0, self.wa, self.wm, self.depth)
        widths, depths = group_blocks_into_stages(block_widths)
        ratios = [self.bottleneck_ratio] * len(widths)
        widths, groups = adjust_widths_groups(widths, ratios, [self.group_width] * len(widths),
                                              self.rounding)
        return AnyNetSpec(depths=tuple(depths), widths=tuple(widths), group_widths=tuple(groups),
                          bottleneck_ratios=tuple(ratios), se_ratio=self.se_ratio)


# Paper names, plus mmdet's (``group_w``, ``bot_mul``) and pycls's so configs migrate unchanged.
_REGNET_KEY_ALIASES = {
    'w0': 'w0', 'wa': 'wa', 'wm': 'wm', 'depth': 'depth',
    'group_width': 'group_width', 'group_w': 'group_width',
    'bottleneck_ratio': 'bottleneck_ratio', 'bot_mul': 'bottleneck_ratio',
    'se_ratio': 'se_ratio', 'se_r': 'se_ratio', 'rounding': 'rounding',
}
_ANYNET_KEY_ALIASES = {
    'depths': 'depths', 'widths': 'widths', 'group_widths': 'group_widths',
    'bottleneck_ratios': 'bottleneck_ratios', 'se_ratio': 'se_ratio',
}


def spec_from_dict(arch: dict) -> AnyNetSpec:
    """Build an ``AnyNetSpec`` from RegNet parameters or explicit per-stage AnyNet lists.

    RegNet keys: ``w0, wa, wm, depth, group_width (group_w), bottleneck_ratio (bot_mul),
    se_ratio, rounding``. AnyNet keys: ``depths, widths, group_widths, bottleneck_ratios,
    se_ratio``.
    """
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a preset name or a dict, got {type(arch).__name__}.')
    keys = set(arch)
    aliases = _ANYNET_KEY_ALIASES if 'widths' in keys or 'depths' in keys else _REGNET_KEY_ALIASES
    unknown = sorted(keys - set(aliases))
    if unknown:
        raise ArchitectureError(f'unknown arch key(s) {unknown}; valid keys: {sorted(aliases)}.')
    kwargs = {}
    for key, value in arch.items():
        name = aliases[key]
        if name in kwargs:
            raise ArchitectureError(f'arch gives {name!r} twice (as {key!r} and an alias).')
        kwargs[name] = value
    if aliases is _ANYNET_KEY_ALIASES:
        missing = {'depths', 'widths', 'group_widths'} - set(kwargs)
        if missing:
            raise ArchitectureError(f'AnyNet arch dict is missing {sorted(missing)}.')
        return AnyNetSpec(**kwargs)
    missing = {'w0', 'wa', 'wm', 'depth', 'group_width'} - set(kwargs)
    if missing:
        raise ArchitectureError(f'RegNet arch dict is missing {sorted(missing)}.')
    return RegNetParams(**kwargs).to_anynet()
