"""EDF, normalised EDF, bootstrap, KS distance and metric-to-error, on small hand-computed cases."""
import json

import numpy as np
import pytest

from regnet_backbone.design.results import (done_trials, errors_for, load_results,
                                            metric_to_error, study_name)
from regnet_backbone.design.stats import (bin_weights, bootstrap_best, edf, ks_distance,
                                          normalized_edf)


def test_edf_counts_ties_and_reaches_one():
    # F(e) = (1/4) #{e_i <= e} on [3, 1, 2, 2]: F(1) = 1/4, F(2) = 3/4, F(3) = 1.
    e, cdf = edf([3, 1, 2, 2])
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
    assert ks_distance([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)
    assert ks_distance([1, 2, 3], [3, 1, 2]) == 0.0
    assert ks_distance([1, 2], [3, 4]) == 1.0
    # Weights 3:1 on [1, 2]: F_a(1) = 0.75 against 0.5 unweighted.
    assert ks_distance([1, 2], [1, 2], weights_a=[3, 1]) == pytest.approx(0.25)


def test_stats_reject_bad_input():
    with pytest.raises(ValueError, match='non-empty'):
        edf([])
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
