"""The verdict logic of the refinement study (regnet_backbone.study.verdicts) on hand-made error
lists, with every expected number computed here by hand from its textbook formula."""
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from regnet_backbone.study.verdicts import agrees, holm, judge_steps, tost, verdict


def test_holm_adjusts_in_step_down_order_and_keeps_the_order_given():
    # sorted: 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04;
    # made non-decreasing: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, 0.6]) == pytest.approx([0.4, 0.6])  # 2 x 0.2; max(1 x 0.6, 0.4)
    assert holm([0.5, 0.9, 0.8]) == pytest.approx([1.0, 1.0, 1.0])  # capped at 1
    with pytest.raises(ValueError, match='p-values in'):
        holm([0.1, 1.5])


def welch(a, b, shift):
    """Welch's t of mean(b) + shift - mean(a) and its degrees of freedom, by the formula."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(b) + shift - np.mean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, df


def test_tost_is_two_one_sided_welch_tests_against_the_margin():
    a = [10.0, 11.0, 12.0, 13.0]
    b = [10.2, 11.9, 12.1, 13.8]
    t_lo, df_lo = welch(a, b, +2.0)
    t_hi, df_hi = welch(a, b, -2.0)
    result = tost(a, b, margin=2.0)
    assert result.p_lower == pytest.approx(student_t.sf(t_lo, df_lo))
    assert result.p_upper == pytest.approx(student_t.cdf(t_hi, df_hi))
    assert result.p == max(result.p_lower, result.p_upper)
    # equal variances and sizes: df = 2 (n - 1) = 6 exactly
    _, df = welch(a, [x + 0.5 for x in a], 0.0)
    assert df == pytest.approx(6.0)


def test_equivalence_within_the_margin():
    a = [12.0, 12.3, 11.8, 12.1, 11.9, 12.2, 12.0, 11.7]
    b = [x + 0.1 for x in a[::-1]]  # same spread, 0.1 points worse
    eq = tost(a, b, margin=1.0)
    assert eq.p < 0.001
    assert verdict(np.mean(b) - np.mean(a), p_difference=0.6, p_equivalence=eq.p) == 'equivalent'
    assert agrees('no loss', 'equivalent') and not agrees('better', 'equivalent')


def test_a_clear_improvement_and_a_clear_loss():
    a = [20.0, 21.0, 19.5, 20.5, 20.2, 19.8]
    b = [15.0, 15.5, 14.8, 15.2, 15.1, 14.9]
    diff = np.mean(b) - np.mean(a)
    assert diff == pytest.approx(90.5 / 6 - 121.0 / 6)  # the sums of b and a
    assert verdict(diff, p_difference=0.001, p_equivalence=1.0) == 'better'
    assert verdict(-diff, p_difference=0.001, p_equivalence=1.0) == 'worse'
    assert tost(a, b, margin=1.0).p > 0.5  # 5 points apart: nowhere near equivalent
    assert agrees('better', 'better') and agrees('no loss', 'better')
    assert not agrees('no loss', 'worse')


def test_too_few_or_too_noisy_errors_are_inconclusive():
    a = [10.0, 14.0, 9.0, 15.0]
    b = [11.0, 16.0, 8.0, 14.0]
    eq = tost(a, b, margin=1.0)
    assert eq.p > 0.05
    assert verdict(np.mean(b) - np.mean(a), p_difference=0.8, p_equivalence=eq.p) == \
        'inconclusive'


def test_judge_steps_adjusts_both_families_with_holm_before_judging():
    steps = [
        dict(a='A', b='B', claim='no loss', mean_diff=0.1, p_mean=0.5, p_equivalence=0.01),
        dict(a='C', b='D', claim='better', mean_diff=-2.0, p_mean=0.02, p_equivalence=0.9),
        dict(a='D', b='E', claim='better', mean_diff=-0.4, p_mean=0.03, p_equivalence=0.02),
    ]
    judged = judge_steps(steps)
    # difference p: sorted 0.02, 0.03, 0.5 -> 0.06, 0.06, 0.5: nothing significant at 0.05
    assert [s['p_holm'] for s in judged] == pytest.approx([0.5, 0.06, 0.06])
    # equivalence p: sorted 0.01, 0.02, 0.9 -> 0.03, 0.04, 0.9
    assert [s['p_equivalence_holm'] for s in judged] == pytest.approx([0.03, 0.9, 0.04])
    assert [s['verdict'] for s in judged] == ['equivalent', 'inconclusive', 'equivalent']
    assert [s['agrees'] for s in judged] == [True, False, False]
