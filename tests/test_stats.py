"""EDF, normalised EDF, bootstrap, KS distance, permutation tests, DKW band, random-search
efficiency, seed noise, correlations and the reading of results.json, on small cases computed by
hand (exact enumerations with itertools, closed forms)."""
import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from regnet_backbone.design.results import (done_trials, errors_for, group_by_sample,
                                            load_results, metric_to_error, one_per_sample,
                                            partition_trials, seed_groups, study_name,
                                            usable_trials)
from regnet_backbone.study.stats import (bin_weights, bootstrap_best, bootstrap_mean_diff,
                                         dkw_band, dkw_epsilon, ks_distance, normalized_edf,
                                         permutation_test, pooled_sd, random_search_efficiency)


def test_edf_counts_ties_and_reaches_one():
    # F(e) = (1/4) #{e_i <= e} on [3, 1, 2, 2]: F(1) = 1/4, F(2) = 3/4, F(3) = 1.
    e, cdf = dkw_band([3, 1, 2, 2])[:2]
    assert e.tolist() == [1, 2, 2, 3]
    assert cdf.tolist() == [0.25, 0.75, 0.75, 1.0]


def test_normalized_edf_by_hand():
    # 2 bins over [0, 10]: [0, 5) holds complexities 0, 1, 1 (m = 3, weight 1 / (2 * 3)) and
    # [5, 10] holds 10, the upper edge (m = 1, weight 1 / 2).
    e, cdf, w = normalized_edf([4, 1, 2, 3], [10, 0, 1, 1], bins=2)
    assert e.tolist() == [1, 2, 3, 4]
    assert w == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    assert cdf == pytest.approx([1 / 6, 2 / 6, 3 / 6, 1.0])
    # Weights come back aligned with the input order from bin_weights.
    assert bin_weights([10, 0, 1, 1], 2) == pytest.approx([1 / 2, 1 / 6, 1 / 6, 1 / 6])


def test_normalized_edf_explicit_edges_and_inner_edge():
    # A value on an inner edge belongs to the upper bin: edges [0, 2, 4]: 2 -> bin 1.
    assert bin_weights([0, 2, 4], [0, 2, 4]) == pytest.approx([1 / 2, 1 / 4, 1 / 4])
    with pytest.raises(ValueError, match='outside the bin edges'):
        bin_weights([0, 5], [0, 2, 4])


def test_normalized_edf_empty_bin_is_an_error():
    # [0, 10] in 3 bins: [0, 3.33), [3.33, 6.67), [6.67, 10]; the middle one is empty.
    with pytest.raises(ValueError, match=r'complexity bin 1 \[3\.33333, 6\.66667\) of 3 is empty'):
        normalized_edf([1, 2], [0, 10], bins=3)


def test_bootstrap_best_by_hand():
    # values [1, 2, 3, 4] with errors [4, 3, 2, 1], resampling all 4 (frac 1): the kept value is
    # 4 unless index 3 is never drawn: P(4) = 1 - (3/4)^4 = 0.68, so the median and the 97.5th
    # percentile are 4; P(kept <= 1) = (1/4)^4 = 0.004 < 0.025 < P(kept <= 2) = (2/4)^4 = 0.0625,
    # so the 2.5th percentile is 2.
    assert bootstrap_best([1, 2, 3, 4], [4, 3, 2, 1], frac=1.0) == (2.0, 4.0, 4.0)
    assert bootstrap_best([5, 5, 5], [1, 2, 3], rounds=100) == (5.0, 5.0, 5.0)
    a = bootstrap_best(np.arange(40), np.random.default_rng(0).random(40), seed=3)
    assert a == bootstrap_best(np.arange(40), np.random.default_rng(0).random(40), seed=3)


def test_bootstrap_single_draw_is_uniform():
    # frac 0.25 of 4 pairs = 1 pair per round: the kept value is uniform over {1, 2, 3, 4}.
    lo, mid, hi = bootstrap_best([1, 2, 3, 4], [4, 3, 2, 1], frac=0.25, rounds=20000)
    assert (lo, hi) == (1.0, 4.0) and 2 <= mid <= 3


def test_ks_distance_by_hand():
    # F_a at 1, 2, 3, 4: 1/3, 2/3, 1, 1; F_b: 0, 1/3, 2/3, 1 -> D = 1/3.
    ones = [1, 1, 1]
    assert ks_distance([1, 2, 3], [2, 3, 4], ones, ones) == pytest.approx(1 / 3)
    assert ks_distance([1, 2, 3], [3, 1, 2], ones, ones) == 0.0
    assert ks_distance([1, 2], [3, 4], ones[:2], ones[:2]) == 1.0
    # Weights 3:1 on [1, 2]: F_a(1) = 0.75 against 0.5 unweighted.
    assert ks_distance([1, 2], [1, 2], [3, 1], [1, 1]) == pytest.approx(0.25)


def test_stats_reject_bad_input():
    with pytest.raises(ValueError, match='non-empty'):
        dkw_band([])
    with pytest.raises(ValueError, match='errors has 2 values but complexity has 1'):
        normalized_edf([1, 2], [1], bins=1)


# --- results.json and the metric -> error rules -------------------------------------------------
def test_metric_to_error_rules():
    assert metric_to_error('coco/bbox_mAP', 0.4) == pytest.approx(60.0)  # 100 (1 - v)
    assert metric_to_error('coco/segm_mAP', 0.0) == 100.0
    assert metric_to_error('mIoU', 75.5) == pytest.approx(24.5)  # 100 - v
    assert metric_to_error('aAcc', 90) == pytest.approx(10.0)
    assert metric_to_error('accuracy/top1', 70.25) == pytest.approx(29.75)
    assert metric_to_error('my/score', 0.9, scale='fraction') == pytest.approx(10.0)
    with pytest.raises(ValueError, match="pass scale='fraction'"):
        metric_to_error('my/score', 0.9)
    with pytest.raises(ValueError, match=r'outside \[0, 1\]'):
        metric_to_error('coco/bbox_mAP', 40.2)


def _results(tmp_path, trials, study=None, name='study_a'):
    folder = tmp_path / name
    folder.mkdir()
    path = folder / 'results.json'
    path.write_text(json.dumps(dict(study=study or {}, trials=trials)))
    return str(path)


def _trial(i, status, **best):
    return dict(trial=i, arch={}, flops=100 * (i + 1), params=10, acts=10, status=status,
                metrics_final=best, metrics_best=best, error=None if status == 'done' else 'x',
                wall_time=1.0)


def test_load_results_and_errors(tmp_path):
    path = _results(tmp_path, [_trial(0, 'done', mIoU=60.0), _trial(1, 'failed'),
                               _trial(2, 'pending'), _trial(3, 'done', mIoU=70.0)])
    results = load_results(path)
    assert [r['trial'] for r in done_trials(results)] == [0, 3]
    assert errors_for(results, 'mIoU') == pytest.approx([40.0, 30.0])
    assert study_name(results, path) == 'study_a'
    with pytest.raises(ValueError, match=r"has no metric 'aAcc'.*\['mIoU'\]"):
        errors_for(results, 'aAcc')


def test_load_results_rejects_other_files(tmp_path):
    bad = tmp_path / 'list.json'
    bad.write_text('[1, 2]')
    with pytest.raises(ValueError, match='not a study results file'):
        load_results(str(bad))
    with pytest.raises(FileNotFoundError):
        load_results(str(tmp_path / 'missing.json'))


# --- evidence: permutation tests, bootstrap of the difference, DKW, random search, noise --------
def _ks_by_hand(a, b):
    """sup |F_a - F_b| over the pooled points, in exact fractions."""
    return max(abs(Fraction(sum(x <= t for x in a), len(a)) -
                   Fraction(sum(x <= t for x in b), len(b))) for t in set(a) | set(b))


def _all_splits(a, b):
    """Every relabelling of the pooled values into n_a + n_b: [(a', b'), ...]."""
    pooled = list(a) + list(b)
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        chosen = set(idx)
        yield ([pooled[i] for i in idx], [pooled[i] for i in range(len(pooled)) if i not in chosen])


def _exact_p(a, b, stat):
    observed = stat(a, b)
    splits = list(_all_splits(a, b))
    return sum(stat(x, y) >= observed for x, y in splits) / len(splits), len(splits)


def test_permutation_test_enumerates_every_split_of_small_samples():
    # Samples with ties across them: a = [1, 2, 2, 5], b = [2, 3, 4] -> C(7, 4) = 35 splits.
    a, b = [1, 2, 2, 5], [2, 3, 4]
    mean_gap = lambda x, y: abs(Fraction(sum(y), len(y)) - Fraction(sum(x), len(x)))  # noqa
    for statistic, by_hand in (('ks', _ks_by_hand), ('mean', mean_gap)):
        expected, splits = _exact_p(a, b, by_hand)
        result = permutation_test(a, b, statistic)
        assert result.exact and result.permutations == splits == math.comb(7, 4)
        assert result.p_value == pytest.approx(expected)
        assert result.statistic == pytest.approx(float(by_hand(a, b)))
    # Fully separated samples of 3: only the observed split and its mirror are as extreme.
    assert permutation_test([1, 2, 3], [4, 5, 6], 'ks').p_value == pytest.approx(2 / 20)
    assert permutation_test([1, 2, 3], [4, 5, 6], 'mean').p_value == pytest.approx(2 / 20)
    # Identical samples: every split is at least as extreme as a distance of 0.
    assert permutation_test([1, 2], [1, 2], 'ks').p_value == 1.0


def test_permutation_test_random_splits_use_b_plus_one_over_m_plus_one():
    # 20 + 20 separated values: C(40, 20) ~ 1.4e11 splits, 2 of them as extreme as the data, so
    # no random split reaches the observed statistic: p = (0 + 1) / (999 + 1).
    a, b = list(range(20)), list(range(100, 120))
    for statistic in ('ks', 'mean'):
        result = permutation_test(a, b, statistic, permutations=999, seed=3)
        assert not result.exact and result.permutations == 999
        assert result.p_value == pytest.approx(1 / 1000)
    # Random splits of a case with an exact p known by enumeration (132 of C(12, 6) = 924
    # splits, 1/7): with m = 800 < 924 splits drawn, the estimate (b + 1) / (m + 1) lies within
    # 4 binomial standard deviations of it.
    a, b, m = [1, 2, 3, 5, 6, 8], [4, 7, 9, 10, 11, 12], 800
    expected, splits = _exact_p(a, b, _ks_by_hand)
    assert (expected, splits) == (1 / 7, 924)
    result = permutation_test(a, b, 'ks', permutations=m, seed=0)
    assert not result.exact and result.permutations == m
    assert abs(result.p_value - (m / 7 + 1) / (m + 1)) < 4 * math.sqrt(1 / 7 * 6 / 7 / m)
    with pytest.raises(ValueError, match="'ks' or 'mean'"):
        permutation_test([1], [2], 'median')


def test_permutation_test_counts_splits_that_tie_in_decimal_arithmetic():
    # Pooled 69.79, 69.87 | 69.80, 69.82, 69.86 (total 349.14): a split with a-sum S has
    # |mean(b) - mean(a)| = |349.14 / 3 - 5 S / 6|, as extreme as the data when |S - 139.656| >=
    # |139.66 - 139.656|. The 10 pair sums are 139.59, .61, .62, .65, .66 (x2), .67, .68, .69,
    # .73: all of them, p = 1. 69.80 + 69.86 ties with the data's 69.79 + 69.87 only in decimal
    # arithmetic: in binary it rounds below it by more than scipy's own tolerance (p 0.9 there).
    result = permutation_test([69.79, 69.87], [69.8, 69.82, 69.86], 'mean')
    assert result.exact and result.permutations == 10 and result.p_value == 1.0


def test_bootstrap_interval_of_the_difference_matches_the_exact_bootstrap():
    # Every resample of a = [0, 1] (2^2) and b = [10, 12, 20] (3^3) is equally likely: the exact
    # bootstrap distribution of mean(b*) - mean(a*) has 108 atoms; its 2.5% and 97.5% quantiles
    # are 9.5 and 19.5. The Monte Carlo interval must be a quantile of it to within 0.5%.
    a, b = [0, 1], [10, 12, 20]
    diffs = [sum(y) / 3 - sum(x) / 2 for x in itertools.product(a, repeat=2)
             for y in itertools.product(b, repeat=3)]
    diff, lo, hi = bootstrap_mean_diff(a, b, rounds=40000, seed=1)
    assert diff == pytest.approx(14 - 0.5)
    below = lambda t: sum(d < t - 1e-9 for d in diffs) / len(diffs)  # noqa: E731
    at_most = lambda t: sum(d <= t + 1e-9 for d in diffs) / len(diffs)  # noqa: E731
    for value, q in ((lo, 0.025), (hi, 0.975)):
        assert below(value) <= q + 0.005 and at_most(value) >= q - 0.005, (value, q)
    # A constant sample has no spread: the interval is the point.
    assert bootstrap_mean_diff([2, 2], [5, 5, 5]) == (3.0, 3.0, 3.0)


def test_dkw_band_closed_form():
    # eps = sqrt(ln(2 / alpha) / (2 n)): n = 24, alpha = 0.05 -> sqrt(ln 40 / 48) = 0.2772.
    assert dkw_epsilon(24) == pytest.approx(math.sqrt(math.log(40) / 48))
    assert dkw_epsilon(24) == pytest.approx(0.2772, abs=1e-4)
    assert dkw_epsilon(100, alpha=0.1) == pytest.approx(math.sqrt(math.log(20) / 200))
    e, cdf, lower, upper, eps = dkw_band([3, 1, 2])
    assert eps == pytest.approx(math.sqrt(math.log(40) / 6))  # 0.784
    assert e.tolist() == [1, 2, 3] and cdf == pytest.approx([1 / 3, 2 / 3, 1])
    assert lower == pytest.approx([0, 0, 1 - eps]) and upper.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match='alpha'):
        dkw_epsilon(5, alpha=1.5)


def _population_sd(values, probs):
    mean = sum(v * p for v, p in zip(values, probs))
    return mean, math.sqrt(sum(p * (v - mean) ** 2 for v, p in zip(values, probs)))


def test_random_search_efficiency_without_replacement_by_enumeration():
    errors = [5.0, 3.0, 8.0, 1.0, 4.0, 3.0]
    curve = random_search_efficiency(errors)
    assert [k for k, _, _ in curve] == [1, 2, 4]  # powers of 2 up to n = 6
    for k, mean, sd in curve + random_search_efficiency(errors, ks=[3, 6]):
        mins = [min(c) for c in itertools.combinations(errors, k)]
        want_mean, want_sd = _population_sd(mins, [1 / len(mins)] * len(mins))
        assert mean == pytest.approx(want_mean) and sd == pytest.approx(want_sd), k
    # k = n: the best of all, with no spread; k = 1: the mean and the population SD.
    assert random_search_efficiency(errors, ks=[6])[0][1:] == pytest.approx((1.0, 0.0))
    with pytest.raises(ValueError, match=r'k must be in \[1, 6\]'):
        random_search_efficiency(errors, ks=[8])


def test_random_search_efficiency_with_replacement_and_weights_by_enumeration():
    errors, weights = [2.0, 1.0, 4.0], [0.5, 0.25, 0.25]
    for w in (None, weights):
        p = [1 / 3] * 3 if w is None else w
        for k, mean, sd in random_search_efficiency(errors, ks=[1, 2, 4], replace=True,
                                                    weights=w):
            draws = list(itertools.product(range(3), repeat=k))
            mins = [min(errors[i] for i in d) for d in draws]
            probs = [math.prod(p[i] for i in d) for d in draws]
            want_mean, want_sd = _population_sd(mins, probs)
            assert mean == pytest.approx(want_mean) and sd == pytest.approx(want_sd), (w, k)
    with pytest.raises(ValueError, match='replace=True'):
        random_search_efficiency(errors, weights=weights)


def test_pooled_seed_sd_by_hand():
    # Groups [10, 12] (ss 2) and [20, 21, 25] (mean 22, ss 4 + 1 + 9 = 14); [7] has no spread
    # to measure: sd = sqrt((2 + 14) / (1 + 2)).
    noise = pooled_sd([[10, 12], [20, 21, 25], [7]])
    assert noise.sd == pytest.approx(math.sqrt(16 / 3))
    assert (noise.groups, noise.values, noise.dof) == (2, 5, 3)
    assert pooled_sd([[1], [2]]) is None and pooled_sd([]) is None


def test_correlation_conventions_the_report_uses():
    """The report's Pearson r and Spearman rho are scipy's: these are the conventions it states."""
    assert pearsonr([1, 2, 3, 4], [3, 5, 7, 9]).statistic == pytest.approx(1.0)
    assert spearmanr([1, 2, 3, 4], [3, 5, 7, 9]).statistic == pytest.approx(1.0)
    x, y = [1, 2, 3, 4], [1, 8, 27, 64]  # monotone, not linear
    assert spearmanr(x, y).statistic == pytest.approx(1.0) and pearsonr(x, y).statistic < 0.99
    # ties get their average rank: x ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4] -> 3 / sqrt(10)
    assert spearmanr([1, 2, 2, 3], [1, 2, 3, 4]).statistic == pytest.approx(3 / math.sqrt(10))
    with pytest.raises(ValueError, match='at least 2'):
        pearsonr([1], [2])


# --- one reader, one rule for a missing metric, one trial per sample ----------------------------
def _rec(trial, status, sample=None, repeat=None, **best):
    r = dict(trial=trial, arch={}, flops=1, params=1, acts=1, status=status,
             metrics_final=best, metrics_best=best, error='boom' if status == 'failed' else None,
             wall_time=1.0)
    if sample is not None:
        r.update(sample=sample, repeat=repeat, seed=100 + (repeat or 0))
    return r


def test_missing_metric_is_one_rule_failed_with_a_reason():
    results = dict(study={}, trials=[
        _rec('t0', 'done', mIoU=60.0), _rec('t1', 'done', aAcc=90.0),
        _rec('t2', 'done', mIoU=float('nan')), _rec('t3', 'failed'), _rec('t4', 'pending'),
        _rec('t5', 'done', mIoU=70.0)])
    part = partition_trials(results, 'mIoU')
    assert [(r['trial'], e) for r, e in part.usable] == [('t0', 40.0), ('t5', 30.0)]
    reasons = {r['trial']: why for r, why in part.failed}
    assert set(reasons) == {'t1', 't2', 't3'}
    assert "no 'mIoU' was logged" in reasons['t1'] and "['aAcc']" in reasons['t1']
    assert 'not a finite number' in reasons['t2'] and reasons['t3'] == 'boom'
    assert [r['trial'] for r in part.pending] == ['t4']
    # the design layer's readers apply the same rule
    assert errors_for(results, 'mIoU') == pytest.approx([40.0, 30.0])
    assert [r['trial'] for r in usable_trials(results, 'mIoU')] == ['t0', 't5']
    # a key that no done trial has is a wrong key, not a set of failures
    with pytest.raises(ValueError, match=r"has no metric 'mDice'.*\['aAcc', 'mIoU'\]"):
        partition_trials(results, 'mDice')


def test_one_trial_per_sample_and_seed_groups():
    # sample 0: trained 3 times (repeat 0 listed last); sample 1: repeat 0 failed, its rerun
    # finished; sample 2 once. Records without "sample" are each their own sample.
    results = dict(study={}, trials=[
        _rec('s0r1', 'done', 0, 1, mIoU=61.0), _rec('s0r2', 'done', 0, 2, mIoU=59.0),
        _rec('s0r0', 'done', 0, 0, mIoU=60.0), _rec('s1r0', 'failed', 1, 0),
        _rec('s1r1', 'done', 1, 1, mIoU=50.0), _rec('s2r0', 'done', 2, 0, mIoU=70.0),
        _rec('plain', 'done', mIoU=80.0)])
    usable = partition_trials(results, 'mIoU').usable
    assert [r['trial'] for r, _ in one_per_sample(usable)] == ['s0r0', 's1r1', 's2r0', 'plain']
    assert [[r['trial'] for r, _ in g] for g in group_by_sample(usable)][0] == [
        's0r0', 's0r1', 's0r2']
    assert seed_groups(usable) == [pytest.approx([40.0, 39.0, 41.0])]
    assert errors_for(results, 'mIoU') == pytest.approx([40.0, 50.0, 30.0, 20.0])
