"""What a comparison of two design spaces supports: ``better``, ``worse``, ``equivalent`` or
``inconclusive``, with the multiplicity correction that several comparisons at once need.

The errors are in percent (lower is better); a difference is the mean error of the later space
``b`` minus that of the earlier space ``a`` (negative: ``b`` is better).

* A difference test says ``better`` or ``worse`` when its p-value, Holm-adjusted across the
  comparisons made together (:func:`holm`), is below ``alpha``.
* Failing to find a difference is not evidence of none. ``equivalent`` needs the two one-sided
  tests (:func:`tost`) against a margin fixed before the data are seen: the difference lies
  within ``(-margin, +margin)`` when both one-sided nulls are rejected.
* Otherwise the data are ``inconclusive``.
"""
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

from .analysis import ALPHA

VERDICTS = ('better', 'worse', 'equivalent', 'inconclusive')
#: The paper's claims, and the verdicts that agree with each.
CLAIMS = {
    'no loss': ('equivalent', 'better'),
    'better': ('better', ),
}


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values, in the order given.

    With the k p-values sorted ascending, the i-th (1-based) is multiplied by k - i + 1, made
    non-decreasing along the order and capped at 1. Rejecting where the adjusted value is below
    ``alpha`` is Holm's procedure: it controls the family-wise error rate at ``alpha``.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f'holm needs p-values in [0, 1], got {list(p_values)}.')
    k = len(p)
    order = np.argsort(p, kind='stable')
    scaled = np.minimum(1.0, (k - np.arange(k)) * p[order])
    adjusted = np.empty(k)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


class Equivalence(NamedTuple):
    """Two one-sided Welch t-tests of ``mean(b) - mean(a)`` against ``(-margin, +margin)``."""
    margin: float
    p_lower: float  # H0: difference <= -margin
    p_upper: float  # H0: difference >= +margin

    @property
    def p(self) -> float:
        """The TOST p-value: both nulls are rejected at ``alpha`` when this is below it."""
        return max(self.p_lower, self.p_upper)


def tost(errors_a: Sequence[float], errors_b: Sequence[float], margin: float) -> Equivalence:
    """Two one-sided tests (Schuirmann's TOST) with Welch's t, unequal variances allowed."""
    from scipy.stats import ttest_ind
    if not margin > 0:
        raise ValueError(f'the equivalence margin must be positive, got {margin}.')
    a, b = np.asarray(errors_a, dtype=float), np.asarray(errors_b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f'tost needs at least 2 errors a side, got {len(a)} and {len(b)}.')
    lower = ttest_ind(b + margin, a, equal_var=False, alternative='greater').pvalue
    upper = ttest_ind(b - margin, a, equal_var=False, alternative='less').pvalue
    return Equivalence(margin, float(lower), float(upper))


def verdict(mean_diff: float, p_difference: float, p_equivalence: float,
            alpha: float = ALPHA) -> str:
    """What the data support, from a (Holm-adjusted) difference p-value and a (Holm-adjusted)
    equivalence p-value: a significant difference wins; then equivalence; else inconclusive."""
    if p_difference < alpha:
        return 'better' if mean_diff < 0 else 'worse'
    if p_equivalence < alpha:
        return 'equivalent'
    return 'inconclusive'


def agrees(claim: str, found: str) -> bool:
    """Whether a verdict supports the paper's ``claim`` (``'no loss'`` or ``'better'``)."""
    return found in CLAIMS[claim]


def judge_steps(steps: Sequence[Dict], alpha: float = ALPHA) -> List[Dict]:
    """Holm-adjust the steps' difference p-values (``p_mean``) across all steps and their
    equivalence p-values across all steps, then give each its ``verdict`` and whether it
    ``agrees`` with its ``claim``. Returns new dicts with ``p_holm``, ``p_equivalence_holm``,
    ``verdict`` and ``agrees`` added."""
    p_holm = holm([s['p_mean'] for s in steps])
    p_equivalence = holm([s['p_equivalence'] for s in steps])
    judged = []
    for step, p_diff, p_eq in zip(steps, p_holm, p_equivalence):
        found = verdict(step['mean_diff'], p_diff, p_eq, alpha)
        judged.append(dict(step, p_holm=p_diff, p_equivalence_holm=p_eq, verdict=found,
                           agrees=agrees(step['claim'], found)))
    return judged
