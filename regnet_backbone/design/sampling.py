"""Seeded random samplers for the paper's design spaces, under a complexity window (pure Python).

The spaces (Radosavovic et al., CVPR 2020, sections 3 and 4; pycls ``sweep/samplers.py``):

* ``anynetx_a``: per stage (4 stages), d_i in [1, 16], w_i in [8, 1024] and a multiple of 8, the
  paper's b_i = w_i / w_b in {1, 2, 4} and g_i in {1, 2, 4, ..., 32}, all drawn log-uniformly (d and
  w with pycls's log-uniform generator, b and g as uniform powers of 2). This package stores the
  inverse ratio, ``bottleneck_ratios`` = w_b / w in {1, 0.5, 0.25}.
* ``anynetx_b``: one b drawn per sample, shared by the stages. ``anynetx_c``: one b and one g.
  ``anynetx_d``: also w_{i+1} >= w_i (four widths drawn, then sorted). ``anynetx_e``: also
  d_{i+1} >= d_i on every stage, the last one included (four depths drawn, then sorted). So B to E
  are drawn inside the restricted space, not by rejection from A.
* ``regnet``: the paper's initial RegNet space: d uniform in [1, 63], w0 log-uniform in [8, 248]
  (multiples of 8), wa log-uniform in [0.1, 255.9] (quantum 0.1), wm log-uniform in [1.5, 3]
  (quantum 0.001), b and g as in AnyNetX.
* ``regnetx`` / ``regnety``: pycls's ``regnet_sampler`` ranges of the published models: d uniform in
  [12, 28], w0 log-uniform in [8, 256] (quantum 8), wa log-uniform in [8, 256] (quantum 0.1), wm
  log-uniform in [2, 3] (quantum 0.001), g power-of-2-or-log-uniform in [8, 128] (quantum 8),
  b = 1; ``regnety`` adds SE with ratio 0.25. We treat the paper's parameter and activation caps
  (section 4, pycls: params < 3 + 5.5 F and acts < 6.5 sqrt(F), in millions, F the flops in GF,
  all counted at 224x224 with the 1000-class head) as part of these two spaces.

A RegNet draw is dropped unless it has exactly 4 stages, none skipped (as pycls checks).

Group compatibility. An AnyNetX draw is made buildable with the paper's own rule (appendix D,
applied to the bottleneck width as the paper says): g = w_b when g > w_b, else w_b is rounded to
a multiple of g (half to even, as pycls) and w = b * w_b. The rounding keeps w a multiple of 8 and
<= 1024. The draw is then dropped if the adjusted network leaves its space: a g capped to a value
that is not a power of 2, or a capped g that breaks C's shared g. RegNet draws go through the
RegNet rule's own compatibility step (:func:`.regnet.adjust_widths_groups`).

A draw is also dropped when it duplicates an earlier one (same ``arch`` dict, as pycls compares
configs) or when its flops, params or acts fall outside the window (inclusive bounds, counted by
:func:`.complexity.complexity` at ``input_size`` with the 1000-class head, pycls's convention).
"""
import json
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import RegNetError
from .complexity import complexity
from .regnet import adjust_widths_groups, generate_block_widths, spec_from_dict
from .space import AnyNetSpec, design_space_violations

SPACES = ('anynetx_a', 'anynetx_b', 'anynetx_c', 'anynetx_d', 'anynetx_e', 'regnet', 'regnetx',
          'regnety')
NUM_STAGES = 4

Window = Optional[Tuple[Optional[float], Optional[float]]]


class SamplingError(RegNetError, ValueError):
    """The wanted number of samples was not reached within ``max_draws`` draws."""


@dataclass
class Sample:
    """One sampled network.

    Attributes:
        arch: a JSON-able dict that ``RegNetBackbone(arch=...)`` accepts: RegNet parameters
            (``w0, wa, wm, depth, group_width, bottleneck_ratio, se_ratio``) for the RegNet spaces,
            per-stage lists (``depths, widths, group_widths, bottleneck_ratios, se_ratio``) for
            AnyNetX. ``bottleneck_ratio(s)`` is w_b / w (the inverse of the paper's b).
        flops: multiply-adds; params; acts: output elements of every conv and linear. All at the
            sampling input size with the 1000-class head (pycls's convention).
    """
    arch: dict
    flops: int
    params: int
    acts: int

    def to_dict(self) -> dict:
        return dict(arch=self.arch, flops=self.flops, params=self.params, acts=self.acts)

    @classmethod
    def from_dict(cls, item: dict) -> 'Sample':
        """The inverse of :meth:`to_dict` (e.g. an item of ``design_space.py sample``'s list)."""
        return cls(arch=dict(item['arch']), flops=int(item['flops']), params=int(item['params']),
                   acts=int(item['acts']))


# ------------------------------------------------------------------------------------------------
# pycls's random generators on a closed range [lo, hi] quantized to q.
# ------------------------------------------------------------------------------------------------
def _quantize(f: float, q, op: Callable[[float], int]):
    """``op(f / q) * q`` in exact decimal, with q's type (so 36.4, never 36.400000000000006)."""
    return type(q)(Decimal(op(f / q)) * Decimal(str(q)))


def _clip(v, lo, hi):
    return min(max(v, lo), hi)


def rand_uniform(rng: random.Random, lo, hi, q):
    """Uniform on [lo, hi] at quantum q: draw in [lo, hi + q), floor to a multiple of q."""
    return _clip(_quantize(rng.uniform(lo, hi + q), q, math.floor), lo, hi)


def rand_log_uniform(rng: random.Random, lo, hi, q):
    """Log-uniform on [lo, hi]: exp(U[log(lo - min(q, lo / 2)), log hi]), rounded up to q."""
    f = math.exp(rng.uniform(math.log(lo - min(q, lo / 2)), math.log(hi)))
    return _clip(_quantize(f, q, math.ceil), lo, hi)


def rand_power2_uniform(rng: random.Random, lo, hi, q):
    """A uniform power of 2 in [lo, hi]: 2 ** floor(U[log2 lo, log2 hi + 1)), floored to q."""
    f2 = math.floor(rng.uniform(math.log2(lo), math.log2(hi) + 1))
    return _clip(_quantize(2.0**f2, q, math.floor), lo, hi)


def rand_power2_or_log_uniform(rng: random.Random, lo, hi, q):
    """A power of 2 in [lo, hi]; if it is >= q, redrawn log-uniformly in [max(lo, q), hi] at q.

    So small values are powers of 2 and large ones multiples of q.
    """
    f = type(q)(rand_power2_uniform(rng, lo, hi, lo))
    if f >= q:
        f = rand_log_uniform(rng, max(lo, q), hi, min(hi, q))
    return f


# ------------------------------------------------------------------------------------------------
# One draw per space: an arch dict, or None when the draw leaves the space.
# ------------------------------------------------------------------------------------------------
def _draw_anynetx(rng: random.Random, space: str) -> Optional[dict]:
    letter = space[-1].upper()
    n = NUM_STAGES

    def paper_b():  # the paper's b = w / w_b in {1, 2, 4}
        return rand_power2_uniform(rng, 1, 4, 1)

    def group():
        return rand_power2_uniform(rng, 1, 32, 1)

    depths = [rand_log_uniform(rng, 1, 16, 1) for _ in range(n)]
    widths = [rand_log_uniform(rng, 8, 1024, 8) for _ in range(n)]
    bs = [paper_b()] * n if letter >= 'B' else [paper_b() for _ in range(n)]
    gs = [group()] * n if letter >= 'C' else [group() for _ in range(n)]
    if letter >= 'D':
        widths.sort()
    if letter >= 'E':
        depths.sort()
    ratios = [1.0 / b for b in bs]  # this package's w_b / w
    widths, gs = adjust_widths_groups(widths, ratios, gs, rounding='pycls')
    spec = AnyNetSpec(depths=tuple(depths), widths=tuple(widths), group_widths=tuple(gs),
                      bottleneck_ratios=tuple(ratios))
    if design_space_violations(spec, letter):
        return None
    return dict(depths=list(spec.depths), widths=list(spec.widths),
                group_widths=list(spec.group_widths),
                bottleneck_ratios=list(spec.bottleneck_ratios), se_ratio=0.0)


def _regnet_stage_count_ok(w0: int, wa: float, wm: float, depth: int) -> bool:
    """pycls's check: exactly 4 stages (distinct quantized widths), none skipped."""
    exps = {round(math.log((w0 + wa * j) / w0) / math.log(wm)) for j in range(depth)}
    widths = set(generate_block_widths(w0, wa, wm, depth))
    return len(exps) == len(widths) == max(exps) + 1 == NUM_STAGES


def _draw_regnet(rng: random.Random, space: str) -> Optional[dict]:
    if space == 'regnet':
        depth = rand_uniform(rng, 1, 63, 1)
        w0 = rand_log_uniform(rng, 8, 248, 8)
        wa = rand_log_uniform(rng, 0.1, 255.9, 0.1)
        wm = rand_log_uniform(rng, 1.5, 3.0, 0.001)
        bottleneck_ratio = 1.0 / rand_power2_uniform(rng, 1, 4, 1)
        group_width = rand_power2_uniform(rng, 1, 32, 1)
        se_ratio = 0.0
    else:
        depth = rand_uniform(rng, 12, 28, 1)
        w0 = rand_log_uniform(rng, 8, 256, 8)
        wa = rand_log_uniform(rng, 8.0, 256.0, 0.1)
        wm = rand_log_uniform(rng, 2.0, 3.0, 0.001)
        group_width = rand_power2_or_log_uniform(rng, 8, 128, 8)
        bottleneck_ratio = 1.0
        se_ratio = 0.25 if space == 'regnety' else 0.0
    if not _regnet_stage_count_ok(w0, wa, wm, depth):
        return None
    return dict(w0=int(w0), wa=float(wa), wm=float(wm), depth=int(depth),
                group_width=int(group_width), bottleneck_ratio=float(bottleneck_ratio),
                se_ratio=se_ratio)


def within_regnetx_caps(flops: int, params: int, acts: int) -> bool:
    """The constrained RegNetX caps at 224x224: params < 3 + 5.5 F and acts < 6.5 sqrt(F).

    params and acts in millions, F = flops in GF (multiply-adds, 1000-class head).
    """
    f = flops / 1e9
    return params / 1e6 < 3 + 5.5 * f and acts / 1e6 < 6.5 * math.sqrt(f)


# ------------------------------------------------------------------------------------------------
# The public sampler.
# ------------------------------------------------------------------------------------------------
def _check_window(name: str, window: Window) -> Tuple[float, float]:
    if window is None:
        return -math.inf, math.inf
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise SamplingError(f'{name} window must be (lo, hi), got {window!r}.')
    lo = -math.inf if window[0] is None else float(window[0])
    hi = math.inf if window[1] is None else float(window[1])
    if lo > hi:
        raise SamplingError(f'{name} window ({window[0]}, {window[1]}) is empty: lo > hi.')
    return lo, hi


def _describe_windows(windows) -> str:
    parts = [f'{name} in [{lo:g}, {hi:g}]' for name, (lo, hi) in windows.items()
             if (lo, hi) != (-math.inf, math.inf)]
    return ', '.join(parts) if parts else 'no complexity window'


def sample(space: str, n: int, *, seed: int = 0, flops: Window = None, params: Window = None,
           acts: Window = None, input_size: Sequence[int] = (224, 224),
           max_draws: int = 1_000_000) -> List[Sample]:
    """Draw ``n`` distinct networks of design space ``space`` inside a complexity window.

    Args:
        space: one of :data:`SPACES` (see the module docstring for each space's ranges).
        n: number of samples wanted.
        seed: seed of the ``random.Random`` generator; the same arguments give the same samples.
        flops, params, acts: optional inclusive windows ``(lo, hi)`` (either bound may be None),
            in multiply-adds, parameters and activations, counted at ``input_size`` (H, W) with
            the 1000-class head (pycls's convention, as ``tools/analyze_complexity.py``).
        max_draws: how many draws (kept or dropped) to try at most.

    Returns:
        ``n`` :class:`Sample` in the order drawn.

    Raises:
        ValueError: an unknown space or a malformed window.
        SamplingError: fewer than ``n`` samples after ``max_draws`` draws.
    """
    if space not in SPACES:
        raise SamplingError(f'unknown design space {space!r}; valid spaces: {", ".join(SPACES)}.')
    if not isinstance(n, int) or n < 0:
        raise SamplingError(f'n must be a non-negative integer, got {n!r}.')
    if len(input_size) != 2 or min(input_size) < 1:
        raise SamplingError(f'input_size must be (H, W) with positive sizes, got {input_size!r}.')
    input_size = (int(input_size[0]), int(input_size[1]))
    windows = dict(flops=_check_window('flops', flops), params=_check_window('params', params),
                   acts=_check_window('acts', acts))
    draw = _draw_anynetx if space.startswith('anynetx') else _draw_regnet
    capped = space in ('regnetx', 'regnety')
    rng = random.Random(seed)
    seen, out, draws = set(), [], 0
    while len(out) < n and draws < max_draws:
        draws += 1
        arch = draw(rng, space)
        if arch is None:
            continue
        key = json.dumps(arch, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        spec = spec_from_dict(arch)
        cx = complexity(spec, input_size=input_size, num_classes=1000)
        if not all(lo <= cx[name] <= hi for name, (lo, hi) in windows.items()):
            continue
        if capped:
            cx224 = cx if input_size == (224, 224) else complexity(spec, num_classes=1000)
            if not within_regnetx_caps(cx224['flops'], cx224['params'], cx224['acts']):
                continue
        out.append(Sample(arch=arch, flops=cx['flops'], params=cx['params'], acts=cx['acts']))
    if len(out) < n:
        raise SamplingError(
            f"got {len(out)} of {n} '{space}' samples in {draws} draws with "
            f'{_describe_windows(windows)} at {input_size[0]}x{input_size[1]} (1000-class head); '
            'widen the window (or raise max_draws).')
    return out

