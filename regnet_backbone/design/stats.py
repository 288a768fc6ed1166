"""The statistics of the paper's method: error EDFs, normalised EDFs, bootstrap, KS (NumPy).

* Error EDF (paper eq. 1): F(e) = (1/n) sum_i 1[e_i <= e]. The paper writes ``<``; ``<=`` differs
  only at the sample points and makes F reach 1 at the largest error.
* Complexity-normalised EDF (Radosavovic et al., ICCV 2019, "On Network Design Spaces"): the
  complexity range is cut into k bins and a model in bin j weighs 1 / (k * m_j), m_j models in bin
  j, so that every complexity bin carries the same total weight 1 / k.
* Empirical bootstrap of the best value of a parameter (paper footnote 4, pycls
  ``get_filters``).
* Kolmogorov-Smirnov distance D = sup_e |F_1(e) - F_2(e)|.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np


def _as_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f'{name} must be a non-empty 1-d sequence of numbers, got shape '
                         f'{arr.shape}.')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{name} must be finite numbers (no NaN or inf).')
    return arr


def _weighted_edf(errors: np.ndarray, weights: np.ndarray):
    order = np.argsort(errors, kind='stable')
    e, w = errors[order], weights[order]
    cum = np.cumsum(w)
    # F(e_i) counts every tie of e_i: take the cumulative weight at the last equal value.
    last = np.searchsorted(e, e, side='right') - 1
    return e, cum[last], w


def edf(errors: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """The error EDF at its sample points.

    Returns:
        (sorted errors, cdf) with ``cdf[i]`` = F(errors[i]) = (1/n) #{e_l <= errors[i]}.
    """
    e = _as_1d('errors', errors)
    sorted_e, cdf, _ = _weighted_edf(e, np.full(e.size, 1.0 / e.size))
    return sorted_e, cdf


def bin_weights(complexity: Sequence[float], bins: Union[int, Sequence[float]]) -> np.ndarray:
    """NDS weights 1 / (k * m_j) of models binned by complexity (aligned with the input).

    Args:
        complexity: flops or params of each model.
        bins: k equal-width bins over [min, max] of ``complexity``, or k + 1 increasing edges.
            A value on the upper edge belongs to the last bin.

    Raises:
        ValueError: an empty bin (naming it), or a value outside explicit edges.
    """
    c = _as_1d('complexity', complexity)
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ValueError(f'bins must be >= 1, got {bins}.')
        edges = np.linspace(c.min(), c.max(), int(bins) + 1)
    else:
        edges = _as_1d('bin edges', bins)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f'bin edges must be at least 2 increasing values, got {list(edges)}.')
        if c.min() < edges[0] or c.max() > edges[-1]:
            raise ValueError(f'complexity values [{c.min():g}, {c.max():g}] fall outside the bin '
                             f'edges [{edges[0]:g}, {edges[-1]:g}].')
    k = edges.size - 1
    # digitize puts a value on the last edge into bin k + 1: clip it into the last bin.
    idx = np.clip(np.digitize(c, edges[1:-1], right=False), 0, k - 1)
    counts = np.bincount(idx, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        j = int(empty[0])
        raise ValueError(f'complexity bin {j} [{edges[j]:g}, {edges[j + 1]:g}) of {k} is empty '
                         f'({empty.size} empty bin(s)); use fewer bins or more models.')
    return 1.0 / (k * counts[idx])


def normalized_edf(errors: Sequence[float], complexity: Sequence[float],
                   bins: Union[int, Sequence[float]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The complexity-normalised error EDF: F(e) = sum_i w_i 1[e_i <= e], w from
    :func:`bin_weights`.

    Returns:
        (sorted errors, cdf, weights), the weights reordered to align with the sorted errors.
    """
    e = _as_1d('errors', errors)
    c = _as_1d('complexity', complexity)
    if e.size != c.size:
        raise ValueError(f'errors has {e.size} values but complexity has {c.size}.')
    return _weighted_edf(e, bin_weights(c, bins))


def bootstrap_best(values: Sequence[float], errors: Sequence[float], *, frac: float = 0.25,
                   rounds: int = 10000, seed: int = 0) -> Tuple[float, float, float]:
    """Empirical bootstrap of the best value of a parameter (paper footnote 4).

    Each round draws ``max(1, int(frac * n))`` of the n (value, error) pairs with replacement and
    keeps the value of the pair with the least error (the first one on ties).

    Returns:
        the 2.5, 50 and 97.5 percentiles of the kept values (95% interval and "most likely best
        value"), NumPy's linear interpolation.
    """
    x = _as_1d('values', values)
    e = _as_1d('errors', errors)
    if x.size != e.size:
        raise ValueError(f'values has {x.size} entries but errors has {e.size}.')
    if not 0 < frac <= 1:
        raise ValueError(f'frac must be in (0, 1], got {frac}.')
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}.')
    m = max(1, int(x.size * frac))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, x.size, size=(int(rounds), m))
    best = picks[np.arange(picks.shape[0]), np.argmin(e[picks], axis=1)]
    lo, mid, hi = np.percentile(x[best], [2.5, 50, 97.5])
    return float(lo), float(mid), float(hi)


def ks_distance(errors_a: Sequence[float], errors_b: Sequence[float],
                weights_a: Optional[Sequence[float]] = None,
                weights_b: Optional[Sequence[float]] = None) -> float:
    """KS distance sup_e |F_a(e) - F_b(e)| between two (optionally weighted) error EDFs.

    Weights default to 1/n; given weights are normalised to sum to 1.
    """
    a, b = _as_1d('errors_a', errors_a), _as_1d('errors_b', errors_b)

    def cdf_at(e, w, points):
        if w is None:
            w = np.full(e.size, 1.0)
        w = _as_1d('weights', w)
        if w.size != e.size or np.any(w < 0) or w.sum() <= 0:
            raise ValueError('weights must be non-negative, one per error, with a positive sum.')
        order = np.argsort(e, kind='stable')
        cum = np.concatenate([[0.0], np.cumsum(w[order]) / w.sum()])
        return cum[np.searchsorted(e[order], points, side='right')]

    points = np.union1d(a, b)
    return float(np.max(np.abs(cdf_at(a, weights_a, points) - cdf_at(b, weights_b, points))))
