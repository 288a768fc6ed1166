"""The design-space samplers against the paper's text.

Every constraint is checked by ``paper_violations`` below, written from the paper (Radosavovic et
al., CVPR 2020, sections 3 and 4) and pycls's sampler ranges (``pycls/sweep/samplers.py`` and
``pycls/sweep/random.py`` in github.com/facebookresearch/pycls), not with the package's own
checker. Complexity is checked against the built torch module.
"""
import json
import math
import random

import pytest
import torch
import torch.nn as nn

from regnet_backbone import RegNetBackbone
from regnet_backbone.design.sampling import (SPACES, Sample, SamplingError, rand_log_uniform,
                                             rand_power2_or_log_uniform, rand_power2_uniform,
                                             rand_uniform, sample)

ANYNET = ['anynetx_a', 'anynetx_b', 'anynetx_c', 'anynetx_d', 'anynetx_e']
POWERS_OF_2_TO_32 = {1, 2, 4, 8, 16, 32}


def _regnet_rule(w0, wa, wm, d):
    """Paper section 3.3, written out here: (per-block widths, per-block exponents s_j)."""
    s = [round(math.log((w0 + wa * j) / w0) / math.log(wm)) for j in range(d)]
    return [8 * round(w0 * wm**k / 8) for k in s], s


def paper_violations(space, arch):
    """Which of the paper's constraints of ``space`` a sampled ``arch`` breaks."""
    bad = []
    if space.startswith('anynetx'):
        ds, ws, gs = arch['depths'], arch['widths'], arch['group_widths']
        paper_bs = [1 / r for r in arch['bottleneck_ratios']]  # paper b = w / w_b
        if not len(ds) == len(ws) == len(gs) == len(paper_bs) == 4:
            bad.append('4 stages')
        for d, w, g, b in zip(ds, ws, gs, paper_bs):
            if not 1 <= d <= 16:
                bad.append(f'd={d}')
            if not (8 <= w <= 1024 and w % 8 == 0):
                bad.append(f'w={w}')
            if b not in (1, 2, 4):
                bad.append(f'b={b}')
            if g not in POWERS_OF_2_TO_32:
                bad.append(f'g={g}')
            if (w / b) % g:  # buildable: the bottleneck width w / b is a multiple of g
                bad.append(f'w_b={w / b} g={g}')
        letter = space[-1]
        if letter >= 'b' and len(set(paper_bs)) != 1:
            bad.append('shared b')
        if letter >= 'c' and len(set(gs)) != 1:
            bad.append('shared g')
        if letter >= 'd' and any(ws[i + 1] < ws[i] for i in range(3)):
            bad.append('w_{i+1} >= w_i')
        if letter >= 'e' and any(ds[i + 1] < ds[i] for i in range(3)):  # the last stage too
            bad.append('d_{i+1} >= d_i')
        if arch['se_ratio'] != 0:
            bad.append('no SE in AnyNetX')
        return bad
    d, w0, wa, wm, g = arch['depth'], arch['w0'], arch['wa'], arch['wm'], arch['group_width']
    b = 1 / arch['bottleneck_ratio']
    if space == 'regnet':  # d < 64, w0 < 256, 0 < wa < 256, 1.5 <= wm <= 3, b and g as AnyNetX
        ranges = [1 <= d < 64, 8 <= w0 < 256, 0 < wa < 256, 1.5 <= wm <= 3, b in (1, 2, 4),
                  g in POWERS_OF_2_TO_32, arch['se_ratio'] == 0]
    else:  # pycls regnet_sampler: d [12, 28], w0 [8, 256], wa [8, 256], wm [2, 3], g [8, 128]
        ranges = [12 <= d <= 28, 8 <= w0 <= 256, 8 <= wa <= 256, 2 <= wm <= 3, b == 1,
                  8 <= g <= 128 and g % 8 == 0,
                  arch['se_ratio'] == (0.25 if space == 'regnety' else 0)]
    if not all(ranges) or w0 % 8:
        bad.append(f'ranges {ranges}')
    widths, s = _regnet_rule(w0, wa, wm, d)
    if len(set(widths)) != 4 or sorted(set(s)) != [0, 1, 2, 3]:
        bad.append(f'stages: widths {sorted(set(widths))}, exponents {sorted(set(s))}')
    return bad


def _caps_ok(smp):
    """Paper section 4 / pycls: params < 3 + 5.5 F and acts < 6.5 sqrt(F) (M, GF, at 224)."""
    f = smp.flops / 1e9
    return smp.params / 1e6 < 3 + 5.5 * f and smp.acts / 1e6 < 6.5 * math.sqrt(f)


@pytest.mark.parametrize('space', SPACES)
def test_samples_satisfy_paper_constraints_and_window(space):
    window = (200e6, 600e6)
    samples = sample(space, 25, seed=3, flops=window)
    assert len(samples) == 25
    assert len({str(s.arch) for s in samples}) == 25  # no duplicates
    for s in samples:
        assert isinstance(s, Sample)
        assert paper_violations(space, s.arch) == [], s.arch
        assert window[0] <= s.flops <= window[1]
        if space in ('regnetx', 'regnety'):
            assert _caps_ok(s), s
        assert s.to_dict() == dict(arch=s.arch, flops=s.flops, params=s.params, acts=s.acts)
        assert Sample.from_dict(json.loads(json.dumps(s.to_dict()))) == s  # plain JSON


def test_params_and_acts_windows():
    samples = sample('anynetx_c', 10, seed=0, params=(1e6, 3e6), acts=(1e6, 4e6))
    assert all(1e6 <= s.params <= 3e6 and 1e6 <= s.acts <= 4e6 for s in samples)


def _torch_complexity(model, input_size):
    """Count the built module as pycls does: multiply-adds of every conv/linear (+1 per bias
    output channel), and every conv/linear output element."""
    counts = dict(flops=0, acts=0)

    def hook(module, inputs, output):
        per_out = module.in_channels // module.groups * module.kernel_size[0] * \
            module.kernel_size[1]
        counts['flops'] += output[0].numel() * per_out + (
            module.out_channels if module.bias is not None else 0)
        counts['acts'] += output[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_size))
    for h in handles:
        h.remove()
    return counts


@pytest.mark.parametrize('space', SPACES)
def test_samples_build_with_their_complexity(space):
    size = (64, 64)
    for s in sample(space, 3, seed=1, flops=(5e6, 40e6), input_size=size):
        model = RegNetBackbone(arch=s.arch)
        w_last = model.out_channels[-1]
        head = w_last * 1000 + 1000  # pycls's 1000-class linear head, with bias
        got = _torch_complexity(model, size)
        assert sum(p.numel() for p in model.parameters()) + head == s.params
        assert got['flops'] + head == s.flops
        assert got['acts'] + 1000 == s.acts


def test_fixed_seed_reproduces():
    for space in ('anynetx_b', 'regnetx'):
        a = sample(space, 5, seed=7, flops=(100e6, 800e6))
        b = sample(space, 5, seed=7, flops=(100e6, 800e6))
        c = sample(space, 5, seed=8, flops=(100e6, 800e6))
        assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
        assert [s.arch for s in a] != [s.arch for s in c]


@pytest.mark.parametrize('space', ['anynetx_b', 'anynetx_c', 'anynetx_d', 'anynetx_e'])
def test_shared_values_vary_across_samples(space):
    samples = sample(space, 30, seed=0)
    shared_b = {s.arch['bottleneck_ratios'][0] for s in samples}
    assert shared_b == {1.0, 0.5, 0.25}  # the paper's b = 1, 2, 4
    if space != 'anynetx_b':
        assert len({s.arch['group_widths'][0] for s in samples}) >= 3


def test_anynetx_a_varies_within_a_sample():
    # A draws every stage independently: many samples mix bottleneck ratios and group widths.
    samples = sample('anynetx_a', 20, seed=0)
    assert any(len(set(s.arch['bottleneck_ratios'])) > 1 for s in samples)
    assert any(len(set(s.arch['group_widths'])) > 1 for s in samples)
    assert any(s.arch['widths'] != sorted(s.arch['widths']) for s in samples)


def test_unreachable_window_fails_after_max_draws_with_a_clear_error():
    with pytest.raises(SamplingError) as info:
        sample('regnetx', 3, flops=(1, 2), max_draws=2000)
    message = str(info.value)
    assert '\n' not in message
    assert 'flops in [1, 2]' in message and '2000 draws' in message and 'widen' in message
    assert isinstance(info.value, ValueError)


def test_bad_arguments():
    with pytest.raises(ValueError, match='valid spaces: anynetx_a, .*regnety'):
        sample('anynetx_f', 1)
    with pytest.raises(ValueError, match='lo > hi'):
        sample('regnet', 1, flops=(2e9, 1e9))
    assert sample('regnet', 0) == []


# --- pycls's random generators, against their distributions -------------------------------------
def test_log_uniform_integers_1_to_16():
    # exp(U[log 0.5, log 16]) rounded up: P(1) = log(1 / 0.5) / log(16 / 0.5) = 1/5,
    # P(16) = log(16 / 15) / log(32).
    rng = random.Random(0)
    n = 40000
    draws = [rand_log_uniform(rng, 1, 16, 1) for _ in range(n)]
    assert set(draws) == set(range(1, 17))
    assert draws.count(1) / n == pytest.approx(0.2, abs=0.01)
    assert draws.count(16) / n == pytest.approx(math.log(16 / 15) / math.log(32), abs=0.005)


def test_generators_ranges_and_quanta():
    rng = random.Random(1)
    widths = {rand_log_uniform(rng, 8, 1024, 8) for _ in range(20000)}
    assert min(widths) == 8 and max(widths) == 1024 and all(w % 8 == 0 for w in widths)
    was = {rand_log_uniform(rng, 8.0, 256.0, 0.1) for _ in range(2000)}
    assert all(8 <= wa <= 256 and round(wa * 10) == pytest.approx(wa * 10) for wa in was)
    assert all(len(repr(wa).split('.')[1]) == 1 for wa in was)  # 36.4, not 36.400000000000006
    assert {rand_power2_uniform(rng, 1, 32, 1) for _ in range(2000)} == POWERS_OF_2_TO_32
    gs = {rand_power2_or_log_uniform(rng, 8, 128, 8) for _ in range(5000)}
    assert min(gs) == 8 and max(gs) == 128 and all(g % 8 == 0 for g in gs) and 24 in gs
    small = {rand_power2_or_log_uniform(rng, 1, 32, 8) for _ in range(5000)}
    assert {1, 2, 4} <= small and all(g in (1, 2, 4) or g % 8 == 0 for g in small)
    depths = [rand_uniform(rng, 12, 28, 1) for _ in range(20000)]
    assert set(depths) == set(range(12, 29))
    assert depths.count(12) / len(depths) == pytest.approx(1 / 17, abs=0.01)
