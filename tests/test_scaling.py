"""Model scaling (regnet_backbone/design/scaling.py) against the rules of "Fast and Accurate Model
Scaling" (Dollár, Singh and Girshick, CVPR 2021) and pycls's scaler, computed by hand here.

The rules: a strategy dX_wY_gZ_rV with S = X + Y + V scales depth by s^(X/S), width by
s^(Y/2S), group width by s^(Z/2S) and resolution by s^(V/2S); depths round to whole blocks,
widths to multiples of 8, group widths to {1, 2, 4, 8k}, then block compatibility; image sizes
round to multiples of 4. Python's round is half to even.
"""
import math

import pytest
import torch

from regnet_backbone import RegNetBackbone
from regnet_backbone.design import PRESETS, complexity, resolve_arch
from regnet_backbone.design import scaling
from regnet_backbone.design.scaling import ScalingError, Strategy, scale_arch, scale_to_flops


def _close(a, b, rel=1e-12):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


# --- strategies ---------------------------------------------------------------------------------
@pytest.mark.parametrize('name, expected', [
    # fast compound scaling, alpha = 0.8: e_d = (1 - a) / 2, e_w = a / 2, e_r = (1 - a) / 4
    ('dWr', dict(d=0.1, w=0.4, g=0.4, r=0.05)),
    ('d1_w8_g8_r1', dict(d=0.1, w=0.4, g=0.4, r=0.05)),
    # uniform compound scaling, alpha = 1/3: each of d, w^2, r^2 takes s^(1/3)
    ('dwr', dict(d=1 / 3, w=1 / 6, g=0.0, r=1 / 6)),
    ('d', dict(d=1.0, w=0.0, g=0.0, r=0.0)),
    ('w', dict(d=0.0, w=0.5, g=0.0, r=0.0)),
    ('r', dict(d=0.0, w=0.0, g=0.0, r=0.5)),
    ('dw', dict(d=0.5, w=0.25, g=0.0, r=0.0)),         # letters weigh 1 each, as pycls reads them
    ('d1_w2', dict(d=1 / 3, w=1 / 3, g=0.0, r=0.0)),   # S = 3: w = s^(2/6)
    ('w1_g1', dict(d=0.0, w=0.5, g=0.5, r=0.0)),
    ('g1', dict(d=0.0, w=0.0, g=1.0, r=0.0)),          # g alone: S = Z / 2, so g = s
])
def test_exponents_follow_the_rule(name, expected):
    exponents = Strategy.parse(name).exponents
    assert set(exponents) == set(expected)
    for key, value in expected.items():
        assert _close(exponents[key], value), (key, exponents[key], value)


def test_named_strategies_are_pycls_strings():
    assert Strategy.parse('dWr').name == 'd1_w8_g8_r1'
    assert Strategy.parse('dwr').name == 'd1_w1_g0_r1'
    assert Strategy.parse('r').name == 'd0_w0_g0_r1'


@pytest.mark.parametrize('strategy', ['dWr', 'd', 'w', 'r', 'dwr', 'd1_w2', 'd2_w3_g3_r1.5'])
@pytest.mark.parametrize('s', [0.25, 1.0, 2.0, 4.0, 13.7, 100.0])
def test_flops_factor_before_rounding_is_s(strategy, s):
    f = Strategy.parse(strategy).factors(s)
    assert _close(f['d'] * f['w']**2 * f['r']**2, s, rel=1e-9)


def test_factors_by_hand():
    f = Strategy.parse('dWr').factors(16)
    # 16^0.1 = 2^0.4, 16^0.4 = 2^1.6, 16^0.05 = 2^0.2
    assert _close(f['d'], 2**0.4) and _close(f['w'], 2**1.6) and _close(f['g'], 2**1.6)
    assert _close(f['r'], 2**0.2)


@pytest.mark.parametrize('bad', ['', 'x1', 'd1_d2', 'd0', 'd0_w0', 'dd', 'd-1', 'd1_q2', 'dWR',
                                 None, 3])
def test_unreadable_strategies_raise_typed_errors(bad):
    with pytest.raises(ScalingError):
        Strategy.parse(bad)


@pytest.mark.parametrize('s', [0, -1, float('nan'), float('inf'), 'two'])
def test_bad_factors_raise_typed_errors(s):
    with pytest.raises(ScalingError):
        scale_arch('regnetx_400mf', s)


def test_unknown_arch_is_a_scaling_error():
    with pytest.raises(ScalingError, match='unknown RegNet arch'):
        scale_arch('regnetx_401mf', 2)


# --- rounding -----------------------------------------------------------------------------------
@pytest.mark.parametrize('g, expected', [
    (0.3, 1), (1, 1), (1.6, 2), (2, 2), (2.6, 4), (4.2, 4), (5, 4),
    (5.4, 4),    # round(5.4) = 5 <= 5 -> 4
    (5.6, 8),    # round(5.6) = 6 -> round(6 / 8) = 1 -> 8
    (8, 8),
    (11.9, 16),  # round(11.9) = 12 -> round(1.5) = 2 -> 16
])
def test_group_width_grid_small(g, expected):
    assert scaling.round_group_width(g) == expected


@pytest.mark.parametrize('g, expected', [
    (20, 16),   # round(2.5) = 2, half to even
    (28, 32),   # round(3.5) = 4
    (36, 32),   # round(4.5) = 4
    (44, 48),   # round(5.5) = 6
    (13.93, 16),
])
def test_group_width_grid_rounds_half_to_even(g, expected):
    assert scaling.round_group_width(g) == expected


def test_regnety_400mf_dwr_x4_by_hand():
    """RegNetY-400MF: depths [1, 3, 6, 6], widths [48, 104, 208, 440], g = 8, b = 1."""
    spec = resolve_arch('regnety_400mf')
    assert (spec.depths, spec.widths, spec.group_widths) == ((1, 3, 6, 6), (48, 104, 208, 440),
                                                             (8, 8, 8, 8))
    result = scale_arch('regnety_400mf', 4, 'dWr')
    # d = 4^0.1 = 1.1487: 1.15, 3.45, 6.89, 6.89 -> [1, 3, 7, 7]
    assert result.arch['depths'] == [1, 3, 7, 7]
    # w = 4^0.4 = 1.7411: 83.6 / 8 = 10.45 -> 80; 181.1 / 8 = 22.6 -> 184; 362.1 / 8 = 45.3 ->
    # 360; 766.1 / 8 = 95.8 -> 768. g = 8 x 1.7411 = 13.9 -> 14 -> round(1.75) x 8 = 16.
    # Compatibility with g = 16: 80 / 16 = 5 -> 80; 184 / 16 = 11.5 -> 12 -> 192 (half to even);
    # 360 / 16 = 22.5 -> 22 -> 352 (half to even); 768 / 16 = 48 -> 768.
    assert result.arch['widths'] == [80, 192, 352, 768]
    assert result.arch['group_widths'] == [16, 16, 16, 16]
    assert result.arch['bottleneck_ratios'] == [1.0] * 4 and result.arch['se_ratio'] == 0.25
    # r = 4^0.05 = 1.0718: 224 x 1.0718 = 240.08 -> a multiple of 4: 240
    assert result.scaled_input_size == (240, 240) and result.input_size_224 == (240, 240)
    assert _close(result.resolution, 4**0.05)
    assert result.strategy == 'd1_w8_g8_r1' and result.scale == 4


def test_depth_and_resolution_by_hand():
    # RegNetX-400MF: depths [1, 2, 7, 12]; d = 3 for 'd' at s = 3
    result = scale_arch('regnetx_400mf', 3, 'd')
    assert result.arch['depths'] == [3, 6, 21, 36]
    assert result.arch['widths'] == list(resolve_arch('regnetx_400mf').widths)
    assert result.scaled_input_size == (224, 224)
    # 'r' at s = 2: r = sqrt(2); 224 x 1.4142 = 316.8 -> 79.2 x 4 -> 316; 1333 x 1.4142 = 1885.1
    # -> 471.3 -> 1884; 800 -> 1131.4 -> 282.8 -> 1132
    result = scale_arch('regnetx_400mf', 2, 'r', (800, 1333))
    assert result.scaled_input_size == (1132, 1884)
    assert result.input_size_224 == (316, 316)
    assert result.arch['depths'] == list(resolve_arch('regnetx_400mf').depths)


def test_scaling_down_floors_at_one_block_and_eight_channels():
    result = scale_arch('regnetx_200mf', 1e-12, 'd1_w1')  # d = 1e-6, w = 1e-3
    assert result.arch['depths'] == [1, 1, 1, 1]
    assert result.arch['widths'] == [8, 8, 8, 8]  # max(1, round(tiny)) x 8
    assert all(g <= w for g, w in zip(result.arch['group_widths'], result.arch['widths']))


def test_group_width_capped_at_the_bottleneck_width():
    """Compatibility: g = min(g, w_b), then w_b rounds to a multiple of g (pycls's rule)."""
    arch = dict(depths=[1, 1], widths=[16, 32], group_widths=[8, 16], bottleneck_ratios=[0.5, 0.5])
    # 'g1' at s = 4: g x 4 = 32 and 64; the bottleneck widths 8 and 16 cap them.
    result = scale_arch(arch, 4, 'g1')
    assert result.arch['widths'] == [16, 32]
    assert result.arch['group_widths'] == [8, 16]


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_scaling_by_one_returns_the_model_unchanged(name):
    spec = resolve_arch(name)
    for strategy in ('dWr', 'd', 'w', 'r', 'dwr'):
        result = scale_arch(name, 1, strategy, (800, 1333))
        assert resolve_arch(result.arch) == spec, strategy
        assert result.scaled_input_size == (800, 1333) and result.input_size_224 == (224, 224)
        assert result.factors == dict(d=1.0, w=1.0, g=1.0, r=1.0)
        assert result.complexity == complexity(spec, input_size=(800, 1333), num_classes=1000)


# --- flops targets ------------------------------------------------------------------------------
TARGETS = [('regnety_400mf', 'dWr', 1.6e9), ('regnety_400mf', 'dWr', 4e9),
           ('regnetx_400mf', 'dWr', 2e9), ('regnetx_400mf', 'd', 1.6e9),
           ('regnetx_400mf', 'w', 1.6e9), ('regnetx_400mf', 'r', 1.6e9),
           ('regnetx_400mf', 'dwr', 4e9), ('regnetx_200mf', 'dWr', 0.3e9),
           ('regnety_1.6gf', 'dWr', 4e9), ('regnety_400mf', 'd', 0.3e9)]


@pytest.mark.parametrize('arch, strategy, target', TARGETS)
def test_flops_target_lands_within_tolerance_and_builds(arch, strategy, target):
    result = scale_to_flops(arch, target, strategy)
    spec = resolve_arch(result.arch)
    counted = complexity(spec, input_size=result.scaled_input_size, num_classes=1000)
    assert abs(counted['flops'] - target) <= scaling.TOLERANCE * target
    assert result.complexity == counted
    f = result.factors
    assert _close(f['d'] * f['w']**2 * f['r']**2, result.scale, rel=1e-9)
    model = RegNetBackbone(arch=result.arch, out_indices=(0, 1, 2, 3)).eval()
    assert list(model.out_channels) == result.arch['widths']
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == result.arch['widths']


def test_flops_target_at_a_detection_size():
    result = scale_to_flops('regnetx_400mf', 40e9, 'dWr', (800, 1333))
    counted = complexity(resolve_arch(result.arch), input_size=result.scaled_input_size,
                         num_classes=1000)
    assert abs(counted['flops'] / 40e9 - 1) <= scaling.TOLERANCE
    assert all(v % 4 == 0 for v in result.scaled_input_size)
    assert result.scaled_input_size[0] > 800 and result.scaled_input_size[1] > 1333


def test_flops_target_out_of_reach_says_why():
    with pytest.raises(ScalingError, match='cannot get that small'):
        scale_to_flops('regnetx_3.2gf', 0.3e9, 'd')  # 1-block stages still cost 0.72 GF
    with pytest.raises(ScalingError, match='never reaches'):
        scale_to_flops('regnetx_200mf', 4e9, 'g1')  # group widths stop at the bottleneck widths


def test_flops_target_in_a_rounding_gap_says_which_rounding():
    # RegNetX-3.2GF (g = 48) at s ~ 0.5: g x 0.5^0.4 = 36.4 rounds to 32 (round(4.5) = 4) just
    # below, to 40 just above; the widths follow the group width, so flops jump past 1.6 GF.
    jump = r'group_widths \[32, 32, 32, 32\] -> \[40, 40, 40, 40\]'
    with pytest.raises(ScalingError, match=jump):
        scale_to_flops('regnetx_3.2gf', 1.6e9, 'dWr')


@pytest.mark.parametrize('strategy', ['dWr', 'd', 'w', 'r', 'dwr'])
def test_every_target_lands_or_says_why(strategy):
    for target in (0.5e9, 1e9, 2e9, 3e9, 5e9, 8e9):
        try:
            result = scale_to_flops('regnety_600mf', target, strategy)
        except ScalingError as error:
            assert str(error).startswith(f'cannot scale to {target / 1e9:.4g} GF within 2%')
            assert 'jumps from' in str(error) or 'reach' in str(error) or 'small' in str(error)
            continue
        counted = complexity(resolve_arch(result.arch), input_size=result.scaled_input_size,
                             num_classes=1000)['flops']
        assert abs(counted - target) <= scaling.TOLERANCE * target


def test_tolerance_is_honoured():
    with pytest.raises(ScalingError, match='within 0.01%'):
        scale_to_flops('regnetx_400mf', 1.6e9, 'd', tolerance=1e-4)
    with pytest.raises(ScalingError):
        scale_to_flops('regnetx_400mf', -1, 'dWr')


# --- the paper's ordering -----------------------------------------------------------------------
@pytest.mark.parametrize('arch', ['regnety_400mf', 'regnetx_1.6gf'])
@pytest.mark.parametrize('s', [2, 4, 8, 16])
def test_fast_scaling_has_fewer_activations_at_the_same_s(arch, s):
    acts = {name: scale_arch(arch, s, name).complexity['acts'] for name in ('dWr', 'd', 'r', 'dwr')}
    assert acts['dWr'] < acts['d'] and acts['dWr'] < acts['r'] and acts['dWr'] < acts['dwr']


# At the same flops (within 5%): the paper's comparison, free of how each strategy's rounding
# lands. (At the same nominal s it can mislead: RegNetX-400MF's dWr x2 rounds g from 16 x 1.32
# to 24 and overshoots to 2.4x the flops, while d x2 lands at 1.9x.)
@pytest.mark.parametrize('arch, s', [('regnety_400mf', 2), ('regnety_400mf', 4),
                                     ('regnety_400mf', 8), ('regnetx_1.6gf', 2),
                                     ('regnetx_1.6gf', 16), ('regnety_800mf', 4),
                                     ('regnety_800mf', 16)])
def test_fast_scaling_has_fewer_activations_at_the_same_flops(arch, s):
    target = s * complexity(resolve_arch(arch), num_classes=1000)['flops']
    acts = {name: scale_to_flops(arch, target, name, tolerance=0.05).complexity['acts']
            for name in ('dWr', 'd', 'r', 'dwr')}
    assert acts['dWr'] < acts['d'] and acts['dWr'] < acts['r'] and acts['dWr'] < acts['dwr']


def test_activations_grow_about_as_predicted():
    """From s = 1 to 16: acts ~ s^(e_d + e_w + 2 e_r), i.e. 16^0.6 = 5.3x for dWr, 16x for r."""
    base = complexity(resolve_arch('regnety_400mf'), num_classes=1000)
    for name, exponent in (('dWr', 0.6), ('r', 1.0), ('w', 0.5)):
        result = scale_arch('regnety_400mf', 16, name)
        flops_ratio = result.complexity['flops'] / base['flops']
        acts_ratio = result.complexity['acts'] / base['acts']
        # against the counted flops, within 0.1 of the predicted exponent
        assert abs(math.log(acts_ratio) / math.log(flops_ratio) - exponent) < 0.1, name


def test_to_dict_has_the_cli_keys():
    data = scale_arch('regnetx_400mf', 2).to_dict()
    assert {'arch', 'factors', 'flops', 'params', 'acts', 'input_size'} <= set(data)
    assert set(data['arch']) == {'depths', 'widths', 'group_widths', 'bottleneck_ratios',
                                 'se_ratio'}
    assert set(data['factors']) == {'d', 'w', 'g', 'r'}
