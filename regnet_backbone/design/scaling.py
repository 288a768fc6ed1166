"""Model scaling (Dollár, Singh and Girshick, "Fast and Accurate Model Scaling", CVPR 2021), in
pure Python.

Scaling a network's flops by ``s`` multiplies its depth by d, its width by w and its input
resolution by r, with d * w**2 * r**2 = s (flops grow as depth x width^2 x resolution^2). The
paper's exponents are e_d, e_w, e_r with e_d + 2 e_w + 2 e_r = 1; its fast compound family sets
e_d = (1 - a) / 2, e_w = a / 2, e_r = (1 - a) / 4. Activations (conv outputs) grow as
d * w * r**2 = s ** (1 - a / 2): linearly for depth or resolution alone, as sqrt(s) for width
alone, and as s**0.6 for the paper's choice a = 0.8 ("dWr", close to sqrt(s)).

A strategy is written as pycls writes it, ``dX_wY_gZ_rV``: with S = X + Y + V,

    d = s ** (X / S),  w = s ** (Y / 2S),  g = s ** (Z / 2S),  r = s ** (V / 2S)

(dWr gives g the weight of w, so the number of groups of each 3x3 conv, w_b / g, stays about
constant). A string of letters only ("d", "dw", "dwr") gives each named
dimension the weight 1 and the others 0, as pycls reads it; so "w" scales the width but keeps
the group widths. Named strategies: :data:`STRATEGIES`. When only g has a weight, S = Z / 2 and
g = s (pycls's rule; flops then follow the 3x3 convs only).

The scaled network is an AnyNet (pycls converts a RegNet to its stage lists first):

* depths: max(1, round(d_i * d));
* widths: max(1, round(w_i * w / 8)) * 8;
* group widths: max(1, round(g_i * g)), then kept when <= 2, 4 when <= 5, else round(g / 8) * 8;
* then block compatibility: the group width is capped at the bottleneck width and the bottleneck
  width rounded to a multiple of it (:func:`.regnet.adjust_widths_groups`, pycls rounding);
* the input size: round(size * r / 4) * 4 per side (left unchanged when r = 1).

``round`` is Python's (half to even), as in pycls. Nothing here imports torch.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Dict, Sequence, Tuple, Union

from ..errors import RegNetError
from .complexity import complexity
from .presets import resolve_arch
from .regnet import adjust_widths_groups
from .space import QUANT, AnyNetSpec

#: The paper's named strategies and the pycls string each one stands for.
STRATEGIES = {
    'dWr': 'd1_w8_g8_r1',  # fast compound scaling, a = 0.8
    'd': 'd1',
    'w': 'w1',
    'r': 'r1',
    'dwr': 'd1_w1_r1',     # uniform compound scaling, a = 1/3
}
DEFAULT_STRATEGY = 'dWr'
#: How close to a flops target the search must land (relative).
TOLERANCE = 0.02
#: Input sizes are rounded to a multiple of this (pycls rounds its image sizes to 4).
SIZE_MULTIPLE = 4
CLASSIFICATION_SIZE = (224, 224)
#: When bisection misses the target, s is also scanned over [s / SPAN, s * SPAN] at
#: 2 * SCAN_POINTS + 1 log-spaced points.
SCAN_SPAN = 1.5
SCAN_POINTS = 300
DIMENSIONS = ('d', 'w', 'g', 'r')

Arch = Union[str, dict, AnyNetSpec]


class ScalingError(RegNetError, ValueError):
    """A strategy cannot be read, or a scaled network cannot be built or meet a flops target."""


@dataclass(frozen=True)
class Strategy:
    """Relative weights of depth, width, group width and resolution (pycls ``dX_wY_gZ_rV``)."""
    d: float = 0.0
    w: float = 0.0
    g: float = 0.0
    r: float = 0.0

    @classmethod
    def parse(cls, text: str) -> 'Strategy':
        """Read a named strategy (:data:`STRATEGIES`), letters (``'dw'``) or ``'d1_w8_g8_r1'``."""
        if not isinstance(text, str) or not text:
            raise ScalingError(f'a scaling strategy is a string such as {DEFAULT_STRATEGY!r} or '
                               f"'d1_w8_g8_r1', got {text!r}.")
        spelled = STRATEGIES.get(text, text)
        if re.fullmatch(r'[dwgr]+', spelled):
            if len(set(spelled)) != len(spelled):
                raise ScalingError(f'strategy {text!r} names a dimension twice.')
            weights = {k: 1.0 for k in spelled}
        else:
            weights = {}
            for token in spelled.split('_'):
                match = re.fullmatch(r'([dwgr])(\d+(?:\.\d*)?|\.\d+)', token)
                if not match:
                    raise ScalingError(
                        f'cannot read scaling strategy {text!r}: use one of '
                        f'{", ".join(STRATEGIES)} or dX_wY_gZ_rV with non-negative numbers '
                        "(e.g. 'd1_w8_g8_r1'; missing dimensions weigh 0).")
                if match.group(1) in weights:
                    raise ScalingError(f'strategy {text!r} names {match.group(1)!r} twice.')
                weights[match.group(1)] = float(match.group(2))
        strategy = cls(**weights)
        if not any(getattr(strategy, k) for k in DIMENSIONS):
            raise ScalingError(f'strategy {text!r} gives every dimension weight 0: it scales '
                               'nothing.')
        return strategy

    @property
    def name(self) -> str:
        """The canonical pycls spelling, e.g. ``'d1_w8_g8_r1'``."""
        return '_'.join(f'{k}{getattr(self, k):g}' for k in DIMENSIONS)

    @property
    def exponents(self) -> Dict[str, float]:
        """e_d, e_w, e_g, e_r: each factor is s ** e (so e_d + 2 e_w + 2 e_r = 1 unless only g
        is weighted)."""
        total = self.d + self.w + self.r or self.g / 2
        return dict(d=self.d / total, w=self.w / (2 * total), g=self.g / (2 * total),
                    r=self.r / (2 * total))

    def factors(self, s: float) -> Dict[str, float]:
        """The multipliers of depth, width, group width and resolution for flops factor ``s``."""
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
            raise ScalingError(f'the scaling factor must be a positive number, got {s!r}.')
        return {k: float(s) ** e for k, e in self.exponents.items()}


def round_group_width(g: float) -> int:
    """pycls's group-width grid: max(1, round(g)), kept when <= 2, 4 when <= 5, else a multiple
    of 8 (round(g / 8) * 8)."""
    g = max(1, round(g))
    if g <= 2:
        return g
    if g <= 5:
        return 4
    return round(g / QUANT) * QUANT


def scale_spec(spec: AnyNetSpec, factors: Dict[str, float]) -> AnyNetSpec:
    """Multiply the stage lists of ``spec`` by ``factors`` (keys d, w, g) and round them.

    See the module docstring for the rounding. Bottleneck ratios and the SE ratio are kept.
    """
    depths = [max(1, round(d * factors['d'])) for d in spec.depths]
    widths = [max(1, round(w * factors['w'] / QUANT)) * QUANT for w in spec.widths]
    groups = [round_group_width(g * factors['g']) for g in spec.group_widths]
    ratios = list(spec.bottleneck_ratios)
    if any(b * w < 1 for b, w in zip(ratios, widths)):
        raise ScalingError(f'a bottleneck width rounds to 0 (widths {widths}, bottleneck ratios '
                           f'{ratios}): scale up less or use larger bottleneck ratios.')
    widths, groups = adjust_widths_groups(widths, ratios, groups, rounding='pycls')
    try:
        return AnyNetSpec(depths=tuple(depths), widths=tuple(widths), group_widths=tuple(groups),
                          bottleneck_ratios=tuple(ratios), se_ratio=spec.se_ratio)
    except ValueError as error:
        raise ScalingError(f'the scaled network is not buildable: {error}') from None


def scale_size(size: Sequence[int], r: float, multiple: int = SIZE_MULTIPLE) -> Tuple[int, int]:
    """``(H, W)`` times ``r``, each rounded to a multiple of ``multiple`` (at least one multiple);
    unchanged when ``r == 1``."""
    if r == 1:
        return int(size[0]), int(size[1])
    return tuple(max(multiple, round(v * r / multiple) * multiple) for v in size)


def spec_to_arch(spec: AnyNetSpec) -> dict:
    """The AnyNet stage lists of ``spec`` as a JSON-able dict (``RegNetBackbone(arch=...)``)."""
    return dict(depths=list(spec.depths), widths=list(spec.widths),
                group_widths=list(spec.group_widths),
                bottleneck_ratios=list(spec.bottleneck_ratios), se_ratio=spec.se_ratio)


@dataclass(frozen=True)
class ScaledArch:
    """A scaled network and its complexity.

    Attributes:
        arch: AnyNet stage lists (``depths, widths, group_widths, bottleneck_ratios,
            se_ratio``): pass it as ``RegNetBackbone(arch=...)`` or ``model.backbone.arch``.
        strategy: the canonical pycls strategy, e.g. ``'d1_w8_g8_r1'``.
        scale: the flops factor s (found by the search when a flops target was given).
        factors: the multipliers ``d``, ``w``, ``g``, ``r`` before rounding (d * w**2 * r**2 = s).
        input_size: the base network's input (H, W) in pixels, as given.
        scaled_input_size: ``input_size`` times r, rounded to multiples of 4.
        complexity: ``flops`` (multiply-adds), ``params``, ``acts`` at ``scaled_input_size``,
            1000-class head included (pycls's convention).
        input_size_224, complexity_224: the same at 224x224 times r (the classification size).
        base_complexity: the unscaled network at ``input_size``.
    """
    arch: dict
    strategy: str
    scale: float
    factors: Dict[str, float]
    input_size: Tuple[int, int]
    scaled_input_size: Tuple[int, int]
    complexity: Dict[str, int]
    input_size_224: Tuple[int, int]
    complexity_224: Dict[str, int]
    base_complexity: Dict[str, int] = field(default_factory=dict)

    @property
    def resolution(self) -> float:
        """The resolution factor r."""
        return self.factors['r']

    @property
    def spec(self) -> AnyNetSpec:
        return resolve_arch(self.arch)

    def to_dict(self) -> dict:
        """JSON-able: ``arch``, ``factors``, ``flops``, ``params``, ``acts`` and ``input_size``
        (the scaled input the counts are at), plus the strategy, s, the base input size and the
        counts at 224x224 x r."""
        return dict(arch=self.arch, factors=dict(self.factors), **self.complexity,
                    input_size=list(self.scaled_input_size), strategy=self.strategy,
                    scale=self.scale, base_input_size=list(self.input_size),
                    complexity_224=dict(self.complexity_224,
                                        input_size=list(self.input_size_224)),
                    base_complexity=dict(self.base_complexity))


def _check_size(input_size) -> Tuple[int, int]:
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and v >= 1 for v in input_size)):
        raise ScalingError(f'input_size must be (H, W) with positive integers, got '
                           f'{input_size!r}.')
    return int(input_size[0]), int(input_size[1])


def _resolve(arch: Arch) -> AnyNetSpec:
    try:
        return resolve_arch(arch)
    except (TypeError, ValueError) as error:
        raise ScalingError(str(error)) from None


def _count(spec: AnyNetSpec, size: Tuple[int, int]) -> Dict[str, int]:
    return complexity(spec, input_size=size, num_classes=1000)


def _scaled(spec: AnyNetSpec, strategy: Strategy, s: float,
            input_size: Tuple[int, int]) -> Tuple[AnyNetSpec, Dict[str, float], Tuple[int, int]]:
    factors = strategy.factors(s)
    return scale_spec(spec, factors), factors, scale_size(input_size, factors['r'])


def scale_arch(arch: Arch, factor: float, strategy: str = DEFAULT_STRATEGY,
               input_size: Sequence[int] = CLASSIFICATION_SIZE) -> ScaledArch:
    """Scale ``arch`` (a preset name, a RegNet dict, AnyNet lists or an ``AnyNetSpec``) by the
    flops factor ``factor`` with ``strategy`` (see the module docstring).

    Args:
        input_size: the base network's input (H, W); the result counts complexity at this size
            times r (e.g. 800x1333 for a detector) and at 224x224 times r.

    Raises:
        ScalingError: an unknown arch or strategy, a factor <= 0, an unbuildable result.
    """
    size = _check_size(tuple(input_size))
    strategy_ = Strategy.parse(strategy)
    spec = _resolve(arch)
    scaled, factors, scaled_size = _scaled(spec, strategy_, factor, size)
    size_224 = scale_size(CLASSIFICATION_SIZE, factors['r'])
    return ScaledArch(arch=spec_to_arch(scaled), strategy=strategy_.name, scale=float(factor),
                      factors=factors, input_size=size, scaled_input_size=scaled_size,
                      complexity=_count(scaled, scaled_size), input_size_224=size_224,
                      complexity_224=_count(scaled, size_224),
                      base_complexity=_count(spec, size))


def _gf(flops: float) -> str:
    return f'{flops / 1e9:.4g} GF'


def _why(tried: Dict[float, int], flops: float, spec: AnyNetSpec, strategy: Strategy,
         size: Tuple[int, int]) -> str:
    """Why no factor tried lands near ``flops``: out of reach, or which rounding jumps over it."""
    below = [s for s, f in tried.items() if f < flops]
    above = [s for s, f in tried.items() if f > flops]
    if not above:
        return (f'it never reaches the target: the largest network tried has '
                f'{_gf(max(tried.values()))}')
    if not below:
        return (f'it cannot get that small: depths stop at 1 block and widths at {QUANT} '
                f'channels, and the smallest network has {_gf(min(tried.values()))}')
    s_lo = max(below, key=lambda s: tried[s])
    s_hi = min(above, key=lambda s: tried[s])
    (a, _, size_a), (b, _, size_b) = (_scaled(spec, strategy, s, size) for s in (s_lo, s_hi))
    changes = [f'{name} {list(getattr(a, name))} -> {list(getattr(b, name))}'
               for name in ('depths', 'widths', 'group_widths')
               if getattr(a, name) != getattr(b, name)]
    if size_a != size_b:
        changes.append(f'input {size_a[0]}x{size_a[1]} -> {size_b[0]}x{size_b[1]}')
    return (f'the rounding jumps from {_gf(tried[s_lo])} (s={s_lo:.4g}) to {_gf(tried[s_hi])} '
            f'(s={s_hi:.4g}) here ({"; ".join(changes)})')


def scale_to_flops(arch: Arch, flops: float, strategy: str = DEFAULT_STRATEGY,
                   input_size: Sequence[int] = CLASSIFICATION_SIZE,
                   tolerance: float = TOLERANCE) -> ScaledArch:
    """Scale ``arch`` with ``strategy`` until its flops reach ``flops`` within ``tolerance``.

    The flops are counted at ``input_size`` times r (the input the scaled network runs at),
    1000-class head included. The factor s is searched in log space: bracketed by doubling,
    then bisected; among every s tried, the one whose flops are nearest the target is kept. The
    rounding makes flops a step function of s, so a strategy with coarse steps (depth alone on
    a shallow network) can skip over a narrow target.

    Raises:
        ScalingError: no s lands within ``tolerance``; the message gives the nearest flops
            reached below and above the target and why.
    """
    size = _check_size(tuple(input_size))
    strategy_ = Strategy.parse(strategy)
    spec = _resolve(arch)
    if not (isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0):
        raise ScalingError(f'the flops target must be a positive number, got {flops!r}.')
    if not 0 < tolerance < 1:
        raise ScalingError(f'tolerance must be in (0, 1), got {tolerance!r}.')
    base = _count(spec, size)['flops']
    tried: Dict[float, int] = {}

    def flops_at(s: float) -> int:
        if s not in tried:
            scaled, _, scaled_size = _scaled(spec, strategy_, s, size)
            tried[s] = _count(scaled, scaled_size)['flops']
        return tried[s]

    def nearest() -> float:
        return min(tried, key=lambda s: (abs(tried[s] - flops), s))

    limit = 2.0**40  # s in [2^-40, 2^40] x the first guess
    guess = flops / base
    lo = hi = guess
    while flops_at(lo) > flops and lo > guess / limit:
        lo /= 2
    while flops_at(hi) < flops and hi < guess * limit:
        hi *= 2
    if flops_at(lo) <= flops <= flops_at(hi):
        for _ in range(60):
            mid = math.sqrt(lo * hi)
            if flops_at(mid) < flops:
                lo = mid
            else:
                hi = mid
            if hi / lo < 1 + 1e-9:
                break
        if abs(tried[nearest()] - flops) > tolerance * flops:
            # Rounding makes flops a step function of s that is not always monotone (a group
            # width that rounds up can shrink the widths): look around the crossing too.
            for i in range(-SCAN_POINTS, SCAN_POINTS + 1):
                flops_at(lo * SCAN_SPAN**(i / SCAN_POINTS))
    best = nearest()
    if abs(tried[best] - flops) > tolerance * flops:
        raise ScalingError(
            f'cannot scale to {_gf(flops)} within {100 * tolerance:g}% with strategy '
            f'{strategy_.name} at {size[0]}x{size[1]}: {_why(tried, flops, spec, strategy_, size)}'
            f' (base network: {_gf(base)}); try another strategy, target or tolerance.')
    return scale_arch(spec, best, strategy, size)
