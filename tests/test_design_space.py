"""The design space and the presets against the paper's table and the reference implementations.

Expected values come from tests/reference/REFERENCE.md (pycls's model_complexity.json) and from the
installed pycls, torchvision and timm code, never from this project's own output.
"""
import re
from pathlib import Path

import pytest

from regnet_backbone import (PRESETS, AnyNetSpec, RegNetParams, complexity,
                             design_space_violations, generate_block_widths, get_preset,
                             in_design_space, resolve_arch)

# pycls's published model_complexity.json and model zoo).
REFERENCE = Path(__file__).resolve().parent / 'reference' / 'REFERENCE.md'


def _reference_table():
    rows = {}
    pattern = re.compile(r'^\| (RegNet[XY]-[\d.]+[MG]F) \|(.*)\|$')
    for line in REFERENCE.read_text().splitlines():
        match = pattern.match(line)
        if match:
            cols = [c.strip() for c in match.group(2).split('|')]
            rows[match.group(1)] = dict(
                depth=int(cols[0]), w0=int(cols[1]), wa=float(cols[2]), wm=float(cols[3]),
                group_width=int(cols[4]), se=cols[5] != '-', flops=int(cols[6]),
                params=int(cols[7]), acts=int(cols[8]))
    return rows


REF = _reference_table()
PYCLS_PRESETS = [name for name, p in PRESETS.items() if p.pycls_name]
TV_PRESETS = [name for name, p in PRESETS.items() if p.torchvision_name]
TIMM_PRESETS = [name for name, p in PRESETS.items() if p.timm_name]


def test_reference_table_is_complete():
    assert len(REF) == 24
    assert sorted(PRESETS[n].pycls_name for n in PYCLS_PRESETS) == sorted(REF)


@pytest.mark.parametrize('name', PYCLS_PRESETS)
def test_preset_parameters_match_paper_table(name):
    preset, ref = PRESETS[name], REF[PRESETS[name].pycls_name]
    p = preset.params
    assert (p.depth, p.w0, p.wa, p.wm, p.group_width) == (
        ref['depth'], ref['w0'], ref['wa'], ref['wm'], ref['group_width'])
    assert p.bottleneck_ratio == 1.0
    assert (p.se_ratio == 0.25) == ref['se']


@pytest.mark.parametrize('name', PYCLS_PRESETS)
def test_complexity_equals_pycls_model_zoo(name):
    ref = REF[PRESETS[name].pycls_name]
    got = complexity(resolve_arch(name), input_size=(224, 224), num_classes=1000)
    assert got == dict(flops=ref['flops'], params=ref['params'], acts=ref['acts'])


@pytest.mark.parametrize('name', PYCLS_PRESETS)
def test_stages_match_pycls(name):
    from pycls.models import regnet as pycls_regnet
    p = PRESETS[name].params
    ws, num_stages, _, _ = pycls_regnet.generate_regnet(p.wa, p.w0, p.wm, p.depth)
    s_ws, s_ds = pycls_regnet.get_stages_from_blocks(ws, ws)
    s_ws, s_gs = pycls_regnet.adjust_ws_gs_comp(s_ws, [1.0] * num_stages,
                                                [p.group_width] * num_stages)
    spec = resolve_arch(name)
    assert spec.widths == tuple(s_ws)
    assert spec.depths == tuple(s_ds)
    assert spec.group_widths == tuple(s_gs)
    assert generate_block_widths(p.w0, p.wa, p.wm, p.depth) == ws


def _torchvision_block_params(tv_name):
    """Ask torchvision's own model function for its BlockParams without building the model."""
    from torchvision.models import regnet as tv_regnet
    captured = {}

    def capture(block_params, weights, progress, **kwargs):
        captured['params'] = block_params

    original = tv_regnet._regnet
    tv_regnet._regnet = capture
    try:
        getattr(tv_regnet, tv_name)()
    finally:
        tv_regnet._regnet = original
    return captured['params']


@pytest.mark.parametrize('name', TV_PRESETS)
def test_stages_match_torchvision(name):
    bp = _torchvision_block_params(PRESETS[name].torchvision_name)
    spec = resolve_arch(name)
    assert spec.depths == tuple(bp.depths)
    assert spec.widths == tuple(bp.widths)
    assert spec.group_widths == tuple(bp.group_widths)
    assert spec.bottleneck_ratios == tuple(bp.bottleneck_multipliers)
    assert spec.se_ratio == (bp.se_ratio or 0)


def test_every_torchvision_regnet_has_a_preset():
    import torchvision.models as tvm
    shipped = {n for n in dir(tvm) if re.fullmatch(r'regnet_[xy]_\w+', n)}
    assert shipped == {p.torchvision_name for p in PRESETS.values() if p.torchvision_name}


@pytest.mark.parametrize('name', TIMM_PRESETS)
def test_stages_match_timm(name):
    from timm.models.regnet import RegNet, model_cfgs
    cfg = model_cfgs[PRESETS[name].timm_name]
    stage_args, common = RegNet._get_stage_args(None, cfg)
    spec = resolve_arch(name)
    assert spec.widths == tuple(a['out_chs'] for a in stage_args)
    assert spec.depths == tuple(a['depth'] for a in stage_args)
    assert spec.group_widths == tuple(a['group_size'] for a in stage_args)
    assert spec.se_ratio == common['se_ratio']


@pytest.mark.parametrize('name', ['regnetx_400mf', 'regnety_800mf', 'regnety_8.0gf'])
def test_torchvision_rounding_differs_where_reference_says(name):
    assert resolve_arch(name) != resolve_arch(name + '_tv')


def test_regnet_rule_by_hand():
    # Paper section 3.3 on RegNetX-200MF: u_j = 24 + 36.44 j, s_j = round(log(u_j/24)/log 2.49),
    # w_j = 8 round(24 * 2.49**s_j / 8): 24, 56 (s=1), 152 (s=2), 368 (s=3).
    widths = generate_block_widths(24, 36.44, 2.49, 13)
    assert widths == [24, 56, 152, 152, 152, 152, 368, 368, 368, 368, 368, 368, 368]


def test_group_width_capped_and_rounded():
    # w=24, b=1, g=48: g is capped at the bottleneck width 24.
    spec = RegNetParams(w0=24, wa=0, wm=2, depth=2, group_width=48).to_anynet()
    assert spec.widths == (24, ) and spec.group_widths == (24, )
    # 120 is not a multiple of g=48: pycls rounds 120/48 = 2.5 half to even -> 2 x 48 = 96;
    # torchvision rounds half up -> 3 x 48 = 144.
    assert RegNetParams(w0=120, wa=0, wm=2, depth=1, group_width=48).to_anynet().widths == (96, )
    tv = RegNetParams(w0=120, wa=0, wm=2, depth=1, group_width=48, rounding='torchvision')
    assert tv.to_anynet().widths == (144, )


@pytest.mark.parametrize('params, message', [
    (dict(w0=20, wa=10, wm=2, depth=4, group_width=8), 'multiple of q=8'),
    (dict(w0=24, wa=-1, wm=2, depth=4, group_width=8), 'wa >= 0'),
    (dict(w0=24, wa=10, wm=1, depth=4, group_width=8), 'wm > 1'),
    (dict(w0=0, wa=10, wm=2, depth=4, group_width=8), 'w0 > 0'),
    (dict(w0=24, wa=10, wm=2, depth=0, group_width=8), 'depth'),
])
def test_invalid_regnet_parameters(params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_arch(params)


def test_arch_dicts_paper_and_mmdet_keys_agree():
    paper = dict(w0=88, wa=26.31, wm=2.25, depth=25, group_width=48, bottleneck_ratio=1.0)
    mmdet = dict(w0=88, wa=26.31, wm=2.25, depth=25, group_w=48, bot_mul=1.0)
    assert resolve_arch(paper) == resolve_arch(mmdet) == resolve_arch('regnetx_3.2gf')


def test_arch_dict_anynet_lists():
    spec = resolve_arch(dict(depths=[1, 2], widths=[32, 64], group_widths=[8, 16],
                             bottleneck_ratios=[1, 2], se_ratio=0.25))
    assert spec.bottleneck_widths == (32, 128) and spec.has_se


@pytest.mark.parametrize('arch, message', [
    ('regnetx_3.3gf', 'valid names: regnetx_200mf'),
    (dict(w0=24, wa=36.44, wm=2.49, depth=13), "missing ['group_width']"),
    (dict(w0=24, wa=36.44, wm=2.49, depth=13, group_width=8, width=3), "unknown arch key(s) ['width']"),
    (dict(depths=[1, 1], widths=[32], group_widths=[8, 8]), 'widths has 1 entries'),
    (dict(depths=[1], widths=[36], group_widths=[8]), 'not a multiple of group width'),
])
def test_bad_arch_errors(arch, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_arch(arch)


def test_design_space_constraints():
    ok = AnyNetSpec(depths=(1, 2, 4, 4), widths=(32, 64, 128, 256), group_widths=(8, ) * 4)
    assert in_design_space(ok, 'E')
    shrinking = AnyNetSpec(depths=(1, 2, 4, 4), widths=(64, 32, 128, 256), group_widths=(8, ) * 4)
    assert in_design_space(shrinking, 'C') and not in_design_space(shrinking, 'D')
    deeper_first = AnyNetSpec(depths=(4, 2, 4, 4), widths=(32, 64, 128, 256),
                              group_widths=(8, ) * 4)
    assert in_design_space(deeper_first, 'D') and not in_design_space(deeper_first, 'E')
    mixed_g = AnyNetSpec(depths=(1, 1), widths=(32, 64), group_widths=(8, 16))
    assert in_design_space(mixed_g, 'B') and not in_design_space(mixed_g, 'C')
    # The paper's b = 1 and b = 4 (bottleneck_ratios 1 and 0.25): both in A, not shared (B).
    mixed_b = AnyNetSpec(depths=(1, 1), widths=(32, 64), group_widths=(8, 8),
                         bottleneck_ratios=(1, 0.25))
    assert in_design_space(mixed_b, 'A') and not in_design_space(mixed_b, 'B')
    too_deep = AnyNetSpec(depths=(17, ), widths=(32, ), group_widths=(8, ))
    assert design_space_violations(too_deep, 'A') == ['A: stage 0 depth 17 > 16']
    with pytest.raises(ValueError, match='design space must be one of'):
        in_design_space(ok, 'F')


@pytest.mark.parametrize('ratio, paper_b, in_a', [
    # The paper's b = w / w_b is in {1, 2, 4}; this package's bottleneck_ratio is w_b / w.
    (1.0, 1, True), (0.5, 2, True), (0.25, 4, True),
    (2.0, 0.5, False),  # an inverted bottleneck (w_b = 2w): the paper's b = 1/2, outside A
    (4.0, 0.25, False),
])
def test_bottleneck_convention_is_the_inverse_of_the_papers_b(ratio, paper_b, in_a):
    spec = AnyNetSpec(depths=(1, 1, 1, 1), widths=(32, 64, 128, 256), group_widths=(8, ) * 4,
                      bottleneck_ratios=(ratio, ) * 4)
    assert spec.bottleneck_widths == tuple(int(w / paper_b) for w in spec.widths)
    assert in_design_space(spec, 'E') is in_a
    if not in_a:
        assert any('bottleneck ratio' in v for v in design_space_violations(spec, 'A'))


def test_e_requires_every_stage_to_be_deeper_the_last_included():
    # Paper section 3.2: AnyNetX_E adds d_{i+1} >= d_i ("the constraints on w_i and d_i each
    # reduce the design space by 4!"), so a shallower last stage is outside E but inside D.
    shallow_last = AnyNetSpec(depths=(1, 2, 4, 3), widths=(32, 64, 128, 256),
                              group_widths=(8, ) * 4)
    assert in_design_space(shallow_last, 'D') and not in_design_space(shallow_last, 'E')
    assert [v for v in design_space_violations(shallow_last, 'E')] == [
        'E: depths (1, 2, 4, 3) decrease']
    # The published RegNets have a shallow last stage: RegNetX-3.2GF's depths are 2, 6, 15, 2.
    assert resolve_arch('regnetx_3.2gf').depths == (2, 6, 15, 2)
    assert any(v.startswith('E:') for v in design_space_violations(
        resolve_arch('regnetx_3.2gf'), 'E'))


def test_regnet_presets_share_b_and_grow_in_width():
    # RegNet generates a shared b and increasing widths (constraints B and D). Shared g (C) can
    # break after the compatibility step: RegNetX-8.0GF's first stage (w=80) caps g=120 at 80.
    for name in PYCLS_PRESETS:
        spec = resolve_arch(name)
        violations = design_space_violations(spec, 'D')
        assert [v for v in violations if v[0] in 'BD'] == [], name
    assert resolve_arch('regnetx_8.0gf').group_widths == (80, 120, 120, 120)


def test_get_preset_exposes_weights_sources():
    preset = get_preset('regnetx_3.2gf')
    assert preset.pycls_url == ('https://dl.fbaipublicfiles.com/pycls/dds_baselines/160906139/'
                                'RegNetX-3.2GF_dds_8gpu.pyth')
    assert preset.torchvision_name == 'regnet_x_3_2gf' and preset.timm_name == 'regnetx_032'


@pytest.mark.parametrize('name', TV_PRESETS)
def test_complexity_matches_torchvision_weight_metadata(name):
    # torchvision publishes num_params and GFLOPs (multiply-adds at 224x224; the SWAG 'E2E'
    # weights are measured at 384x384) of its ImageNet weights.
    from torchvision.models import get_model_weights
    weights = [w for w in get_model_weights(PRESETS[name].torchvision_name) if 'E2E' not in w.name]
    ours = complexity(resolve_arch(name), input_size=(224, 224))
    for w in weights:
        assert ours['params'] == w.meta['num_params']
        assert ours['flops'] / 1e9 == pytest.approx(w.meta['_ops'], abs=0.0006)


def test_analyze_complexity_cli(tmp_path, run_tool, explain):
    import json
    tool = Path(__file__).resolve().parents[1] / 'tools' / 'analyze_complexity.py'
    proc = run_tool(tool, 'regnetx_3.2gf', '--json')
    assert proc.returncode == 0, explain(proc)
    row = json.loads(proc.stdout)[0]
    ref = REF['RegNetX-3.2GF']
    assert (row['flops'], row['params'], row['acts']) == (ref['flops'], ref['params'], ref['acts'])
    assert row['widths'] == [96, 192, 432, 1008]
    table = run_tool(tool, '--markdown')
    assert table.returncode == 0, explain(table)
    assert all(f'`{name}`' in table.stdout for name in PRESETS)
    bad = run_tool(tool, 'regnetx_3gf')
    assert bad.returncode == 2 and "unknown RegNet arch 'regnetx_3gf'" in bad.stderr


def test_readme_zoo_table_is_generated():
    from regnet_backbone.design.summary import all_presets, describe, markdown_table
    readme = (Path(__file__).resolve().parents[1] / 'README.md').read_text()
    table = readme.split('<!-- zoo-table:start -->\n')[1].split('\n<!-- zoo-table:end -->')[0]
    assert table == markdown_table([describe(a) for a in all_presets()]), (
        'README table is stale: python tools/analyze_complexity.py --markdown')
