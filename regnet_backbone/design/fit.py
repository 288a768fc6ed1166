"""The quantized linear fit of paper section 3.3: the RegNet (w0, wa, wm) closest to any network.

The paper says only: "given a model, set d to its depth and grid-search w0, wa, wm to minimise the
mean log-ratio (e_fit) of predicted to observed per-block widths". It publishes no formula, grid
or code, so this project states its definition:

    e_fit = (1 / d) * sum_j |ln(w_hat_j) - ln(w_j)|,  j = 0 .. d - 1,

where w_j is the observed width of block j (stage widths repeated by depth), and w_hat_j is the
width the RegNet rule generates for block j before any group-width rounding:
u_j = w0 + wa * j, s_j = round(ln(u_j / w0) / ln(wm)), w_hat_j = 8 * round(w0 * wm**s_j / 8)
(:func:`.regnet.generate_block_widths`). The search box is the paper's: w0 a multiple of 8 in
[8, 256], 0 < wa < 256, 1.5 <= wm <= 3.

The optimiser is exact in wa and at least as good as the exhaustive grid (w0 in multiples of 8,
wa in steps of 0.5, wm in steps of 0.01). For fixed (w0, wm), the predicted widths depend on wa only
through the thresholds wa = w0 * (wm**(k + 1/2) - 1) / j at which some s_j steps from k to k + 1,
so e_fit is piecewise constant in wa. Sweeping the sorted thresholds, each crossing changes one
block's term, and a cumulative sum gives e_fit on every interval of wa at once (NumPy, vectorised
over wm). wm is searched on the 0.01 grid; w0 on the multiples of 8.
"""
import math
from dataclasses import asdict, dataclass
from typing import List, Sequence, Union

import numpy as np

from ..errors import ArchitectureError
from .presets import resolve_arch
from .regnet import generate_block_widths
from .space import QUANT, AnyNetSpec

W0_GRID = tuple(range(QUANT, 256 + 1, QUANT))
WM_GRID = tuple(round(1.5 + 0.01 * i, 2) for i in range(151))
WA_MAX = 256.0


@dataclass
class FitResult:
    """The best RegNet parameters for a network of ``depth`` blocks, and its e_fit (>= 0)."""
    w0: int
    wa: float
    wm: float
    depth: int
    e_fit: float

    def to_dict(self) -> dict:
        return asdict(self)


def block_widths_of(spec_or_arch: Union[str, dict, AnyNetSpec]) -> List[int]:
    """Per-block output widths of a network: its stage widths repeated by the stage depths."""
    spec = resolve_arch(spec_or_arch)
    return [w for w, d in zip(spec.widths, spec.depths) for _ in range(d)]


def e_fit(block_widths: Sequence[int], w0: int, wa: float, wm: float) -> float:
    """e_fit of RegNet parameters (w0, wa, wm) against observed per-block widths (see module)."""
    predicted = generate_block_widths(w0, wa, wm, len(block_widths))
    return sum(abs(math.log(p) - math.log(w))
               for p, w in zip(predicted, block_widths)) / len(block_widths)


def _nice_point(lo: float, hi: float) -> float:
    """A short decimal strictly inside (lo, hi) (0.5, 0.1 or 0.01 steps), else the midpoint."""
    for step in (1.0, 0.5, 0.1, 0.01):
        v = math.floor(lo / step + 1) * step
        v = round(v, 2)
        margin = 1e-9 * max(1.0, v)
        if lo + margin < v < hi - margin:
            return v
    return (lo + hi) / 2


def _best_for_w0(logw: np.ndarray, w0: int, wms: np.ndarray):
    """Per wm: the least e_fit over wa in (0, 256) and the wa interval that reaches it."""
    d = logw.size
    n_wm = wms.size
    e0 = np.abs(math.log(w0) - logw).sum() / d  # wa -> 0+: every s_j = 0, w_hat_j = w0
    if d == 1:
        return np.full(n_wm, e0), np.zeros(n_wm), np.full(n_wm, WA_MAX)
    js = np.arange(1, d, dtype=np.float64)
    # Largest exponent k whose threshold can lie below WA_MAX for the smallest wm.
    k_max = int(math.floor(math.log(1 + WA_MAX * (d - 1) / w0) / math.log(wms.min()))) + 1
    ks = np.arange(k_max + 1, dtype=np.float64)
    powers = wms[:, None]**ks[None, :]  # (n_wm, K + 1)
    widths = QUANT * np.round(w0 * powers / QUANT)  # w_hat for s = k
    log_hat = np.log(widths)
    # Term of block j when s_j = k, and its change when s_j steps from k to k + 1.
    term = np.abs(log_hat[:, None, :] - logw[1:, None][None, :, :])  # (n_wm, d-1, K+1)
    delta = (term[:, :, 1:] - term[:, :, :-1]) / d  # (n_wm, d-1, K)
    thresholds = w0 * (wms[:, None]**(ks[None, :-1] + 0.5) - 1)  # (n_wm, K)
    thresholds = thresholds[:, None, :] / js[None, :, None]  # (n_wm, d-1, K)
    thresholds = np.where(thresholds < WA_MAX, thresholds, np.inf).reshape(n_wm, -1)
    delta = np.where(np.isfinite(thresholds), delta.reshape(n_wm, -1), 0.0)
    order = np.argsort(thresholds, axis=1, kind='stable')
    t_sorted = np.take_along_axis(thresholds, order, axis=1)
    errs = e0 + np.cumsum(np.take_along_axis(delta, order, axis=1), axis=1)
    # Interval i runs from the i-th crossing to the next one (or to WA_MAX).
    lo = np.concatenate([np.zeros((n_wm, 1)), t_sorted], axis=1)
    hi = np.concatenate([t_sorted, np.full((n_wm, 1), np.inf)], axis=1)
    hi = np.minimum(hi, WA_MAX)
    errs = np.concatenate([np.full((n_wm, 1), e0), errs], axis=1)
    valid = hi - lo > 1e-9 * np.maximum(1.0, lo)
    errs = np.where(valid, errs, np.inf)
    best = np.argmin(errs, axis=1)
    rows = np.arange(n_wm)
    return errs[rows, best], lo[rows, best], hi[rows, best]


def fit_regnet(block_widths: Sequence[int]) -> FitResult:
    """Fit the quantized linear rule to per-block widths (see the module docstring).

    Args:
        block_widths: observed output width of every block, in order (e.g. from
            :func:`block_widths_of`, or :func:`.regnet.generate_block_widths`).

    Returns:
        the :class:`FitResult` with the least e_fit in the paper's box; its ``e_fit`` is
        recomputed with :func:`.regnet.generate_block_widths` at the returned parameters.
    """
    widths = [int(w) for w in block_widths]
    if not widths or min(widths) < 1:
        raise ArchitectureError(f'block widths must be a non-empty list of positive integers, '
                                f'got {list(block_widths)!r}.')
    logw = np.log(np.asarray(widths, dtype=np.float64))
    wms = np.asarray(WM_GRID, dtype=np.float64)
    candidates = []
    for w0 in W0_GRID:
        errs, los, his = _best_for_w0(logw, w0, wms)
        i = int(np.argmin(errs))
        candidates.append((float(errs[i]), w0, float(wms[i]), float(los[i]), float(his[i])))
    candidates.sort(key=lambda c: c[0])
    best = None
    # The sweep's sums carry rounding error: recompute the leading candidates exactly.
    for err, w0, wm, lo, hi in candidates[:4]:
        for wa in (_nice_point(lo, hi), (lo + hi) / 2):
            exact = e_fit(widths, w0, wa, wm)
            if best is None or exact < best.e_fit:
                best = FitResult(w0=w0, wa=wa, wm=wm, depth=len(widths), e_fit=exact)
            if abs(exact - err) < 1e-9:
                break
    return best
