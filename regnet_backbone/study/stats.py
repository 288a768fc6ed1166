"""The statistics of a design-space study: the paper's own, and the tests on top of scipy.stats.

Ours, because scipy.stats has no equivalent:

* the complexity-normalised error EDF (Radosavovic et al., ICCV 2019, "On Network Design
  Spaces"): the complexity range is cut into k bins and a model in bin j weighs 1 / (k * m_j),
  m_j models in bin j, so that every complexity bin carries the same total weight 1 / k;
* the KS distance D = sup_e |F_1(e) - F_2(e)| between two weighted EDFs (``ks_2samp`` has no
  weights);
* the empirical bootstrap of the best value of a parameter (paper footnote 4, pycls
  ``get_filters``): it resamples a quarter of the models (``bootstrap`` resamples all n);
* the Dvoretzky-Kiefer-Wolfowitz (DKW) band of an EDF (``ecdf`` gives pointwise intervals);
* random-search efficiency (NDS): the minimum error of k random models, mean and sigma;
* the seed-noise floor: the pooled SD of the same networks trained with other seeds.

On scipy.stats: the two-sample permutation tests on the KS distance and on the difference of
means (``permutation_test``, every split when there are few) and the percentile bootstrap
interval of the difference of means (``bootstrap``). Plain EDFs, the unweighted KS distance and
the correlations are scipy's ``ecdf``, ``ks_2samp``, ``pearsonr`` and ``spearmanr``, called
where they are used.

An EDF is F(e) = sum_i w_i 1[e_i <= e] (paper eq. 1 with w_i = 1/n; the paper writes ``<``,
which differs only at the sample points; ``<=`` makes F reach 1 at the largest error).
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import stats

from .layout import StudyError


class BinningError(StudyError, ValueError):
    """The complexity bins of a normalised EDF leave a bin empty or miss some models."""


def _as_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f'{name} must be a non-empty 1-d sequence of numbers, got shape '
                         f'{arr.shape}.')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{name} must be finite numbers (no NaN or inf).')
    return arr


def bin_weights(complexity: Sequence[float], bins: Union[int, Sequence[float]]) -> np.ndarray:
    """NDS weights 1 / (k * m_j) of models binned by complexity (aligned with the input).

    Args:
        complexity: flops or params of each model.
        bins: k equal-width bins over [min, max] of ``complexity``, or k + 1 increasing edges.
            A value on the upper edge belongs to the last bin.

    Raises:
        BinningError: bins < 1, an empty bin (naming it), or a value outside explicit edges.
    """
    c = _as_1d('complexity', complexity)
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise BinningError(f'bins must be >= 1, got {bins}.')
        edges = np.linspace(c.min(), c.max(), int(bins) + 1)
    else:
        edges = _as_1d('bin edges', bins)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise BinningError(f'bin edges must be at least 2 increasing values, got '
                               f'{list(edges)}.')
        if c.min() < edges[0] or c.max() > edges[-1]:
            raise BinningError(f'complexity values [{c.min():g}, {c.max():g}] fall outside the '
                               f'bin edges [{edges[0]:g}, {edges[-1]:g}].')
    k = edges.size - 1
    # digitize puts a value on the last edge into bin k + 1: clip it into the last bin.
    idx = np.clip(np.digitize(c, edges[1:-1], right=False), 0, k - 1)
    counts = np.bincount(idx, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        j = int(empty[0])
        raise BinningError(f'complexity bin {j} [{edges[j]:g}, {edges[j + 1]:g}) of {k} is '
                           f'empty ({empty.size} empty bin(s)); use fewer bins or more models.')
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
    order = np.argsort(e, kind='stable')
    e, w = e[order], bin_weights(c, bins)[order]
    # F(e_i) counts every tie of e_i: take the cumulative weight at the last equal value.
    return e, np.cumsum(w)[np.searchsorted(e, e, side='right') - 1], w


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
                weights_a: Sequence[float], weights_b: Sequence[float]) -> float:
    """KS distance sup_e |F_a(e) - F_b(e)| between two weighted error EDFs.

    The weights of each side are normalised to sum to 1 (equal weights: ``ks_2samp``'s
    statistic).
    """
    a, b = _as_1d('errors_a', errors_a), _as_1d('errors_b', errors_b)

    def cdf_at(e, w, points):
        w = _as_1d('weights', w)
        if w.size != e.size or np.any(w < 0) or w.sum() <= 0:
            raise ValueError('weights must be non-negative, one per error, with a positive sum.')
        order = np.argsort(e, kind='stable')
        cum = np.concatenate([[0.0], np.cumsum(w[order]) / w.sum()])
        return cum[np.searchsorted(e[order], points, side='right')]

    points = np.union1d(a, b)
    return float(np.max(np.abs(cdf_at(a, weights_a, points) - cdf_at(b, weights_b, points))))


# --- evidence: is a gap between two studies real? -------------------------------------------------
@dataclass(frozen=True)
class PermutationTest:
    """The result of :func:`permutation_test`.

    Attributes:
        statistic: the observed value (KS distance, or |mean(b) - mean(a)| in the errors' unit).
        p_value: share of label splits whose statistic is at least the observed one.
        permutations: splits evaluated (every distinct split when ``exact``).
        exact: True when every one of the C(n_a + n_b, n_a) splits was enumerated.
    """
    statistic: float
    p_value: float
    permutations: int
    exact: bool


def _ks_statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """sup_e |F_x(e) - F_y(e)| along ``axis``, for a whole batch of sample pairs at once
    (``ks_2samp`` loops over a batch in Python: seconds for 10000 permutations)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    n_x, n = x.shape[-1], x.shape[-1] + y.shape[-1]
    pooled = np.concatenate([x, y], axis=-1)
    order = np.argsort(pooled, axis=-1, kind='stable')
    values = np.take_along_axis(pooled, order, axis=-1)
    in_x = np.cumsum(order < n_x, axis=-1)
    # n_x n_y (F_x - F_y) after the first i pooled values, in integers: in_x n_y - (i - in_x) n_x
    gap = np.abs(in_x * n - np.arange(1, n + 1) * n_x)
    # F is compared after the last of equal values (ties count together)
    last = np.append(values[..., 1:] != values[..., :-1],
                     np.ones(values.shape[:-1] + (1, ), bool), axis=-1)
    return np.max(np.where(last, gap, 0), axis=-1) / (n_x * (n - n_x))


def _mean_gap(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """|mean(y) - mean(x)| along ``axis``."""
    return np.abs(np.mean(y, axis=axis) - np.mean(x, axis=axis))


def permutation_test(errors_a: Sequence[float], errors_b: Sequence[float], statistic: str = 'ks',
                     *, permutations: int = 10000, seed: int = 0) -> PermutationTest:
    """Two-sample permutation test of "a and b come from the same distribution"
    (the splits: ``scipy.stats.permutation_test``).

    The two samples are pooled and relabelled at random (n_a values to ``a``, the rest to
    ``b``); the p-value is the share of relabellings whose statistic is at least the observed
    one. ``statistic='ks'``: the KS distance sup_e |F_a(e) - F_b(e)|; ``'mean'``: the two-sided
    |mean(b) - mean(a)|.

    When the number of distinct splits C(n_a + n_b, n_a) is at most ``permutations``, every
    split is enumerated and p = #{splits at least as extreme} / C, the observed split included
    (an exact p-value). Otherwise ``permutations`` random splits are drawn from
    ``numpy.random.default_rng(seed)`` and p = (b + 1) / (m + 1), b of the m random splits
    being at least as extreme (Phipson & Smyth's convention: never 0, valid at any m).

    Raises:
        ValueError: an empty sample, an unknown statistic, or permutations < 1.
    """
    a, b = _as_1d('errors_a', errors_a), _as_1d('errors_b', errors_b)
    if statistic not in ('ks', 'mean'):
        raise ValueError(f"statistic must be 'ks' or 'mean', got {statistic!r}.")
    if permutations < 1:
        raise ValueError(f'permutations must be >= 1, got {permutations}.')
    function = _ks_statistic if statistic == 'ks' else _mean_gap
    if min(a.size, b.size) >= 2:
        result = stats.permutation_test(
            (a, b), function, vectorized=True, n_resamples=permutations, batch=1000,
            random_state=np.random.default_rng(seed))
        observed, null = result.statistic, result.null_distribution
    else:  # scipy wants 2 values a side; a single value has n_a + n_b splits, all of them here
        pooled = np.concatenate([a, b])
        alone = np.arange(pooled.size)
        rest = np.array([np.delete(pooled, i) for i in alone])
        singles = pooled[alone, None]
        null = function(singles, rest) if a.size == 1 else function(rest, singles)
        observed = function(a[None], b[None])[0]
    # scipy's own p-value allows 100 machine epsilons of the observed value: a mean gap that is
    # small against the errors misses splits that tie with it in decimal arithmetic (69.79 +
    # 69.87 against 69.80 + 69.86 rounds apart by more). Allow 1e-9 of the largest |error|.
    scale = 1.0 if statistic == 'ks' else max(1.0, np.max(np.abs(a)), np.max(np.abs(b)))
    hits = int(np.count_nonzero(null >= observed - 1e-9 * scale))
    exact = math.comb(a.size + b.size, a.size) <= permutations
    p = hits / null.size if exact else (hits + 1) / (null.size + 1)
    return PermutationTest(float(observed), p, null.size, exact)


def bootstrap_mean_diff(errors_a: Sequence[float], errors_b: Sequence[float], *,
                        rounds: int = 10000, level: float = 0.95,
                        seed: int = 0) -> Tuple[float, float, float]:
    """Percentile bootstrap interval of mean(b) - mean(a) (``scipy.stats.bootstrap``).

    Each round resamples a and b independently, each with replacement and at its own size, and
    takes the difference of their means.

    Returns:
        (mean(b) - mean(a) of the data, lo, hi): lo and hi are the (1 - level) / 2 and
        (1 + level) / 2 percentiles of the ``rounds`` differences (NumPy's linear interpolation).
    """
    a, b = _as_1d('errors_a', errors_a), _as_1d('errors_b', errors_b)
    if not 0 < level < 1:
        raise ValueError(f'level must be in (0, 1), got {level}.')
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}.')
    diff = float(b.mean() - a.mean())
    # a single value resamples to itself: only the other side varies (scipy wants 2 a side)
    if min(a.size, b.size) >= 2:
        data, function = (a, b), lambda x, y, axis: np.mean(y, axis) - np.mean(x, axis)
    elif b.size >= 2:
        data, function = (b, ), lambda y, axis: np.mean(y, axis) - a[0]
    elif a.size >= 2:
        data, function = (a, ), lambda x, axis: b[0] - np.mean(x, axis)
    else:
        return diff, diff, diff
    result = stats.bootstrap(data, function, vectorized=True, n_resamples=rounds,
                             confidence_level=level, method='percentile',
                             random_state=np.random.default_rng(seed))
    lo, hi = result.confidence_interval
    return diff, float(lo), float(hi)


def dkw_epsilon(n: int, alpha: float = 0.05) -> float:
    """Half-width of the Dvoretzky-Kiefer-Wolfowitz band: sqrt(ln(2 / alpha) / (2 n)).

    With probability at least 1 - alpha the true CDF lies within it of the EDF of n samples,
    everywhere at once (Massart's constant; n = 24, alpha = 0.05: 0.277).
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}.')
    if not 0 < alpha < 1:
        raise ValueError(f'alpha must be in (0, 1), got {alpha}.')
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def dkw_band(errors: Sequence[float], alpha: float = 0.05):
    """The error EDF (``scipy.stats.ecdf``) with its (1 - alpha) DKW confidence band.

    Returns:
        (sorted errors, cdf, lower, upper, eps): ``cdf[i]`` = F(errors[i]) = (1/n) #{e_l <=
        errors[i]}; lower / upper are cdf -/+ eps clipped to [0, 1], eps = :func:`dkw_epsilon`
        (n, alpha).
    """
    e = np.sort(_as_1d('errors', errors))
    cdf = stats.ecdf(e).cdf.evaluate(e)
    eps = dkw_epsilon(e.size, alpha)
    return e, cdf, np.clip(cdf - eps, 0.0, 1.0), np.clip(cdf + eps, 0.0, 1.0), eps


def _powers_of_two(n: int) -> List[int]:
    return [2 ** p for p in range(int(math.log2(n)) + 1)] if n >= 1 else []


def random_search_efficiency(errors: Sequence[float], ks: Optional[Sequence[int]] = None, *,
                             replace: bool = False,
                             weights: Optional[Sequence[float]] = None
                             ) -> List[Tuple[int, float, float]]:
    """Random-search efficiency (NDS): the minimum error of k models drawn at random.

    For each k, the exact distribution of min(e_i1, ..., e_ik) over the draws gives its mean
    and its standard deviation sigma (analytic, no resampling noise). With the errors sorted,
    e_(1) <= ... <= e_(n):

    * ``replace=False`` (default): k distinct trials of the n, every k-subset equally likely:
      P(min = e_(i)) = C(n - i, k - 1) / C(n, k). Its mean is the unbiased (U-statistic)
      estimate of the expected best of k fresh models; k <= n.
    * ``replace=True``: k independent draws from the EDF (NDS's notebooks, which draw with
      ``weights``, e.g. the complexity-normalised ones): with S_i = sum_{j >= i} w_(j),
      P(min = e_(i)) = S_i^k - S_{i+1}^k. Any k >= 1.

    Args:
        ks: the experiment sizes; default 1, 2, 4, ... up to n.
        weights: per-error probabilities (normalised here), only with ``replace=True``.

    Returns:
        [(k, mean, sigma), ...] in the order of ``ks``, errors' unit.
    """
    e = _as_1d('errors', errors)
    n = e.size
    order = np.argsort(e, kind='stable')
    e = e[order]
    if weights is not None:
        if not replace:
            raise ValueError('weights need replace=True (weighted draws without replacement '
                             'have no closed form here).')
        w = _as_1d('weights', weights)
        if w.size != n or np.any(w < 0) or w.sum() <= 0:
            raise ValueError('weights must be non-negative, one per error, with a positive sum.')
        w = w[order] / w.sum()
    else:
        w = np.full(n, 1.0 / n)
    ks = _powers_of_two(n) if ks is None else [int(k) for k in ks]
    out = []
    # S_i = P(a draw is at rank >= i), S_{n+1} = 0
    survival = np.clip(np.append(np.cumsum(w[::-1])[::-1], 0.0), 0.0, 1.0)
    for k in ks:
        if replace and k < 1:
            raise ValueError(f'k must be >= 1, got {k}.')
        if not replace and not 1 <= k <= n:
            raise ValueError(f'k must be in [1, {n}] without replacement, got {k}.')
        if replace:
            probs = survival[:-1] ** k - survival[1:] ** k
        else:
            total = math.comb(n, k)
            probs = np.array([math.comb(n - i, k - 1) / total for i in range(1, n + 1)])
        mean = float(probs @ e)
        var = float(probs @ (e - mean) ** 2)
        out.append((k, mean, math.sqrt(max(var, 0.0))))
    return out


@dataclass(frozen=True)
class NoiseFloor:
    """Pooled within-group standard deviation (:func:`pooled_sd`).

    Attributes:
        sd: sqrt(sum_g sum_i (x_gi - mean_g)^2 / dof), the errors' unit.
        groups: groups with at least 2 values (the ones that count).
        values: values in those groups.
        dof: degrees of freedom, sum_g (n_g - 1).
    """
    sd: float
    groups: int
    values: int
    dof: int


def pooled_sd(groups: Sequence[Sequence[float]]) -> Optional[NoiseFloor]:
    """The seed-noise floor: pooled SD of repeated trainings of the same networks.

    Each group holds the errors of one architecture trained with different seeds. Groups of
    one value carry no information on noise and are ignored; None when no group has two.
    """
    sq, dof, used, count = 0.0, 0, 0, 0
    for i, g in enumerate(groups):
        x = _as_1d(f'group {i}', g)
        if x.size < 2:
            continue
        sq += float(np.sum((x - x.mean()) ** 2))
        dof += x.size - 1
        used += 1
        count += x.size
    if not dof:
        return None
    return NoiseFloor(math.sqrt(sq / dof), used, count, dof)
