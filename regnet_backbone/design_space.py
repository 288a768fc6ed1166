"""The AnyNetX / RegNet design space of Radosavovic et al. (CVPR 2020), in pure Python.

An AnyNetX network is a stem followed by stages; stage ``i`` has a depth ``d_i`` (blocks), a width
``w_i`` (output channels), a bottleneck ratio ``b_i`` and a group width ``g_i``. RegNet does not add
new modules: it only *generates* those per-stage lists from four numbers with the quantized linear
rule (section 3.3 of the paper). Nothing here imports torch.
"""
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

QUANT = 8

#: The ways to round a bottleneck width to a multiple of its group width. ``'pycls'`` is the
#: paper's code (Python ``round``, half to even); ``'torchvision'`` is ``_make_divisible`` (half up,
#: never below 90% of the input), which changes a few torchvision models (see ``*_tv`` presets).
ROUNDINGS = ('pycls', 'torchvision')


@dataclass(frozen=True)
class AnyNetSpec:
    """What to build: per-stage lists of an AnyNetX network (one entry per stage).

    Attributes:
        depths: blocks per stage.
        widths: output channels per stage.
        group_widths: channels per group of each stage's 3x3 conv.
        bottleneck_ratios: bottleneck width / output width, per stage.
        se_ratio: Squeeze-and-Excitation width as a fraction of the block's input width;
            0 means no SE (RegNetX), 0.25 is RegNetY.
    """
    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    group_widths: Tuple[int, ...]
    bottleneck_ratios: Tuple[float, ...] = field(default=None)
    se_ratio: float = 0.0

    def __post_init__(self):
        n = len(self.depths)
        ratios = self.bottleneck_ratios
        if ratios is None:
            ratios = (1.0, ) * n
        object.__setattr__(self, 'depths', tuple(int(d) for d in self.depths))
        object.__setattr__(self, 'widths', tuple(int(w) for w in self.widths))
        object.__setattr__(self, 'group_widths', tuple(int(g) for g in self.group_widths))
        object.__setattr__(self, 'bottleneck_ratios', tuple(float(b) for b in ratios))
        validate_anynet(self)

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def bottleneck_widths(self) -> Tuple[int, ...]:
        return tuple(int(round(w * b)) for w, b in zip(self.widths, self.bottleneck_ratios))

    @property
    def has_se(self) -> bool:
        return self.se_ratio > 0


def validate_anynet(spec: AnyNetSpec) -> None:
    """Raise ``ValueError`` naming the first broken structural constraint of ``spec``."""
    n = len(spec.depths)
    for name in ('widths', 'group_widths', 'bottleneck_ratios'):
        if len(getattr(spec, name)) != n:
            raise ValueError(f'AnyNet {name} has {len(getattr(spec, name))} entries but depths '
                             f'has {n}: give one value per stage.')
    if n == 0:
        raise ValueError('AnyNet needs at least one stage.')
    for i, (d, w, g, b) in enumerate(
            zip(spec.depths, spec.widths, spec.group_widths, spec.bottleneck_ratios)):
        if d < 1 or w < 1 or g < 1 or b <= 0:
            raise ValueError(f'stage {i}: depth, width and group width must be >= 1 and the '
                             f'bottleneck ratio > 0 (got d={d}, w={w}, g={g}, b={b}).')
        w_b = int(round(w * b))
        if w_b % g:
            raise ValueError(f'stage {i}: bottleneck width {w_b} (= {w} x {b}) is not a multiple '
                             f'of group width {g}; use adjust_widths_groups() first.')
    if not 0 <= spec.se_ratio < 1:
        raise ValueError(f'se_ratio must be in [0, 1), got {spec.se_ratio}.')


# ------------------------------------------------------------------------------------------------
# Design spaces A-E (paper section 3): each returns the list of violated constraints.
# ------------------------------------------------------------------------------------------------
def design_space_violations(spec: AnyNetSpec, space: str) -> List[str]:
    """List the constraints of design space ``space`` ('A'..'E', cumulative) that ``spec`` breaks.

    A: b in {1, 2, 4}, g in {1, 2, 4, ..., 32}, w <= 1024 and a multiple of 8, d <= 16.
    B: A plus one shared b. C: B plus one shared g. D: C plus non-decreasing widths.
    E: D plus non-decreasing depths, the last stage excepted.
    """
    space = space.upper()
    if space not in 'ABCDE' or len(space) != 1:
        raise ValueError(f"design space must be one of 'A', 'B', 'C', 'D', 'E', got {space!r}.")
    errors = []
    for i, (d, w, g, b) in enumerate(
            zip(spec.depths, spec.widths, spec.group_widths, spec.bottleneck_ratios)):
        if b not in (1, 2, 4):
            errors.append(f'A: stage {i} bottleneck ratio {b} not in {{1, 2, 4}}')
        if g not in (1, 2, 4, 8, 16, 32):
            errors.append(f'A: stage {i} group width {g} not in {{1, 2, 4, ..., 32}}')
        if w > 1024 or w % QUANT:
            errors.append(f'A: stage {i} width {w} not a multiple of 8 up to 1024')
        if d > 16:
            errors.append(f'A: stage {i} depth {d} > 16')
    if space >= 'B' and len(set(spec.bottleneck_ratios)) > 1:
        errors.append(f'B: bottleneck ratios {spec.bottleneck_ratios} are not shared')
    if space >= 'C' and len(set(spec.group_widths)) > 1:
        errors.append(f'C: group widths {spec.group_widths} are not shared')
    if space >= 'D' and any(a > b for a, b in zip(spec.widths, spec.widths[1:])):
        errors.append(f'D: widths {spec.widths} decrease')
    inner = spec.depths[:-1]
    if space >= 'E' and any(a > b for a, b in zip(inner, inner[1:])):
        errors.append(f'E: depths {spec.depths} decrease before the last stage')
    return errors


def in_design_space(spec: AnyNetSpec, space: str) -> bool:
    """True when ``spec`` satisfies every constraint of design space ``space``."""
    return not design_space_violations(spec, space)


# ------------------------------------------------------------------------------------------------
# The RegNet rule.
# ------------------------------------------------------------------------------------------------
def generate_block_widths(w0: float, wa: float, wm: float, depth: int,
                          q: int = QUANT) -> List[int]:
    """Per-block widths of the quantized linear rule.

    u_j = w0 + wa * j, s_j = round(log(u_j / w0) / log(wm)), w_j = q * round(w0 * wm**s_j / q).
    """
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f'RegNet depth must be a positive integer, got {depth!r}.')
    if wa < 0:
        raise ValueError(f'RegNet needs wa >= 0, got wa={wa}.')
    if w0 <= 0:
        raise ValueError(f'RegNet needs w0 > 0, got w0={w0}.')
    if wm <= 1:
        raise ValueError(f'RegNet needs wm > 1, got wm={wm}.')
    if w0 % q:
        raise ValueError(f'RegNet needs w0 to be a multiple of q={q}, got w0={w0}.')
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
        raise ValueError(f'rounding must be one of {ROUNDINGS}, got {rounding!r}.')
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
        depth: total blocks. group_width: channels per group. bottleneck_ratio: b.
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
            raise ValueError(f'group_width must be >= 1, got {self.group_width}.')
        if self.bottleneck_ratio <= 0:
            raise ValueError(f'bottleneck_ratio must be > 0, got {self.bottleneck_ratio}.')
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
        raise ValueError(f'unknown arch key(s) {unknown}; valid keys: {sorted(aliases)}.')
    kwargs = {}
    for key, value in arch.items():
        name = aliases[key]
        if name in kwargs:
            raise ValueError(f'arch gives {name!r} twice (as {key!r} and an alias).')
        kwargs[name] = value
    if aliases is _ANYNET_KEY_ALIASES:
        missing = {'depths', 'widths', 'group_widths'} - set(kwargs)
        if missing:
            raise ValueError(f'AnyNet arch dict is missing {sorted(missing)}.')
        return AnyNetSpec(**kwargs)
    missing = {'w0', 'wa', 'wm', 'depth', 'group_width'} - set(kwargs)
    if missing:
        raise ValueError(f'RegNet arch dict is missing {sorted(missing)}.')
    return RegNetParams(**kwargs).to_anynet()
