"""The quantized linear fit (paper section 3.3): e_fit is the mean |log| gap between the
observed per-block widths and those the RegNet rule predicts from (w0, wa, wm).

Expected values: generated RegNets whose parameters lie on the search grid fit exactly
(e_fit = 0), and an exhaustive grid search written here in NumPy is never better than the fit.
"""
import math
import random

import numpy as np
import pytest

from regnet_backbone.design.fit import FitResult, block_widths_of, e_fit, fit_regnet
from regnet_backbone.design.regnet import generate_block_widths
from regnet_backbone.design.sampling import sample


def _rule(w0, wa, wm, d):
    """The RegNet rule before group rounding, from the paper's text."""
    out = []
    for j in range(d):
        s = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        out.append(8 * round(w0 * wm**s / 8))
    return out


def _e_fit_by_hand(observed, w0, wa, wm):
    pred = _rule(w0, wa, wm, len(observed))
    return sum(abs(math.log(p) - math.log(w)) for p, w in zip(pred, observed)) / len(observed)


@pytest.mark.parametrize('w0, wa, wm, d', [
    (24, 36.44, 2.49, 13),   # RegNetX-200MF (paper Table / pycls zoo)
    (88, 26.31, 2.25, 25),   # RegNetX-3.2GF
    (48, 20.71, 2.65, 27),   # RegNetY-1.6GF
    (232, 115.89, 2.53, 20),  # RegNetY-32GF
])
def test_fit_recovers_published_regnets(w0, wa, wm, d):
    widths = _rule(w0, wa, wm, d)
    result = fit_regnet(widths)
    assert isinstance(result, FitResult)
    assert result.e_fit == 0.0 and result.depth == d
    assert _rule(result.w0, result.wa, result.wm, d) == widths


def test_fit_recovers_random_on_grid_regnets():
    rng = random.Random(0)
    for _ in range(8):
        w0 = 8 * rng.randint(1, 32)
        wm = rng.randint(150, 300) / 100
        wa = rng.uniform(0.5, 255)
        d = rng.randint(1, 64)
        widths = generate_block_widths(w0, wa, wm, d)
        result = fit_regnet(widths)
        assert result.e_fit == 0.0, (w0, wa, wm, d, result)
        assert generate_block_widths(result.w0, result.wa, result.wm, d) == widths
        assert result.w0 % 8 == 0 and 8 <= result.w0 <= 256
        assert 0 < result.wa < 256 and 1.5 <= result.wm <= 3


def test_e_fit_definition_by_hand():
    # Observed [16, 32]; (w0, wa, wm) = (16, 1, 2): s_1 = round(log2(17/16)) = 0, so the
    # prediction is [16, 16] and e_fit = (|ln 16 - ln 16| + |ln 16 - ln 32|) / 2 = ln(2) / 2.
    assert e_fit([16, 32], 16, 1, 2) == pytest.approx(math.log(2) / 2)
    assert e_fit([16, 32], 16, 16, 2) == 0.0  # s_1 = round(log2(2)) = 1 -> 32
    assert fit_regnet([16, 32]).e_fit == 0.0


def test_e_fit_positive_on_anynetx_a_samples():
    # A RegNet's block widths never decrease; A samples mostly do, and even monotone ones are
    # off the rule's geometric steps.
    for s in sample('anynetx_a', 4, seed=2, flops=(100e6, 600e6)):
        result = fit_regnet(block_widths_of(s.arch))
        assert result.e_fit > 0
        assert result.e_fit == pytest.approx(
            _e_fit_by_hand(block_widths_of(s.arch), result.w0, result.wa, result.wm))


def _grid_min(observed):
    """Exhaustive grid over the paper's RegNet ranges (w0 < 256, wa < 256, 1.5 <= wm <= 3): w0 in
    8..256 step 8, wa in 0.5..255.5 step 0.5, wm 1.5..3 step 0.01, vectorised; NumPy's round is
    half to even like Python's."""
    obs = np.log(np.asarray(observed, dtype=np.float64))
    d = len(observed)
    j = np.arange(d, dtype=np.float64)
    was = np.arange(1, 512) * 0.5
    wms = np.round(1.5 + 0.01 * np.arange(151), 2)
    best = np.inf
    for w0 in range(8, 257, 8):
        u = w0 + was[:, None, None] * j[None, None, :]
        s = np.round(np.log(u / w0) / np.log(wms)[None, :, None])
        pred = 8 * np.round(w0 * wms[None, :, None]**s / 8)
        err = np.abs(np.log(pred) - obs).mean(axis=2)
        best = min(best, float(err.min()))
    return best


@pytest.mark.parametrize('observed', [
    [32, 8, 8, 64, 48],            # non-monotone (AnyNetX_A-like)
    [24, 40, 40, 120, 120, 400],   # monotone, off-rule
    [8, 8, 16, 16, 16, 1024],
])
def test_fit_at_least_as_good_as_exhaustive_grid(observed):
    result = fit_regnet(observed)
    assert result.e_fit <= _grid_min(observed) + 1e-12


def test_fit_at_depth_64():
    # The deepest RegNet the paper samples (d < 64); timing it is tools/benchmark_design.py's job.
    rng = random.Random(5)
    widths = sorted(8 * rng.randint(1, 128) for _ in range(64))
    result = fit_regnet(widths)
    assert result.depth == 64 and result.e_fit > 0  # random sorted widths are off the rule
    assert result.e_fit == pytest.approx(_e_fit_by_hand(widths, result.w0, result.wa, result.wm))
    assert result.w0 % 8 == 0 and 8 <= result.w0 <= 256
    assert 0 < result.wa < 256 and 1.5 <= result.wm <= 3


def test_block_widths_of_repeats_stage_widths():
    # RegNetX-200MF: stages of widths 24, 56, 152, 368 and depths 1, 1, 4, 7 (paper section 3.3).
    assert block_widths_of('regnetx_200mf') == [24, 56] + [152] * 4 + [368] * 7
    assert block_widths_of(dict(depths=[2, 1], widths=[16, 32], group_widths=[8, 8])) == \
        [16, 16, 32]


def test_fit_rejects_bad_widths():
    with pytest.raises(ValueError, match='positive integers'):
        fit_regnet([])
    with pytest.raises(ValueError, match='positive integers'):
        fit_regnet([8, 0])
