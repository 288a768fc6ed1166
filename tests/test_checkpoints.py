"""Pretrained-checkpoint conversion, checked numerically against the reference implementations.

Every reference network (torchvision, timm, pycls, mmdet) is built offline with random weights and
random BN affine parameters and running statistics, saved in its own file layout, converted
(through the CLI and through ``load_pretrained``) and run next to ``RegNetBackbone``: all four
stage outputs must agree. pycls and mmdet weights expect BGR; converted files and backbones that
declare ``in_channel_order='RGB'`` expect RGB, so there the reference gets the channel-reversed
image while ours gets RGB (tests/test_migration.py covers the undeclared, native-order case).
"""
import importlib.util
import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from regnet_backbone import RegNetBackbone
from regnet_backbone.checkpoints import (AmbiguousFormatError, ArchitectureMismatchError,
                                         CheckpointError, NotRegNetError, UnknownFormatError,
                                         convert, export_checkpoint, export_state_dict,
                                         load_pretrained, read_checkpoint, read_converted,
                                         sources_table)
from regnet_backbone.design.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / 'tools' / 'convert_pretrained.py'
TOL = 1e-4
SIZE = 32  # stage outputs 8x8, 4x4, 2x2, 1x1: enough to exercise strides and padding

TV_PRESET = {p.torchvision_name: n for n, p in PRESETS.items() if p.torchvision_name}
TIMM_PRESET = {p.timm_name: n for n, p in PRESETS.items() if p.timm_name}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny convs on a shared 2-core box: intra-op threads only add barrier waits (100x slower
    under load), so this file runs single-threaded and restores the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine params, running stats and counters, and random conv biases (the
    reference inits leave them at 1/0); conv weights keep the reference's random init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.2, generator=g)
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.num_batches_tracked.fill_(int(torch.randint(1, 10**6, (), generator=g)))
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0.0, 0.2, generator=g)
    model.eval()  # mmdet's ResNet.train() returns None, so no chaining
    return model


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return ((ours - ref).norm() / ref.norm().clamp_min(1e-12)).item()


def assert_same_stages(ours, refs):
    assert len(ours) == len(refs) == 4
    errors = [rel_err(a, b) for a, b in zip(ours, refs)]
    assert max(errors) < TOL, errors
    assert all(torch.isfinite(r).all() and r.abs().max() > 0 for r in refs)


def stages_torchvision(model, x):
    x = model.stem(x)
    outs = []
    for i in range(1, 5):
        x = getattr(model.trunk_output, f'block{i}')(x)
        outs.append(x)
    return outs


def stages_sx(model, x):
    """pycls and timm: ``stem`` then ``s1``..``s4``."""
    x = model.stem(x)
    outs = []
    for i in range(1, 5):
        x = getattr(model, f's{i}')(x)
        outs.append(x)
    return outs


def empty_backbone(arch, **kwargs) -> RegNetBackbone:
    """Our backbone with uninitialised weights (building on 'meta' skips the costly init)."""
    with torch.device('meta'):
        model = RegNetBackbone(arch=arch, **kwargs)
    return model.to_empty(device='cpu').eval()


def run_ours(model, x):
    with torch.no_grad():
        return model.eval()(x)


def image(seed=0):
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _load_cli_module():
    spec = importlib.util.spec_from_file_location('convert_pretrained_cli', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLI_MODULE = _load_cli_module()


def cli_in_process(capsys, *args):
    """Same ``main`` without a new interpreter (cheap on 2 cores). Returns (rc, out, err)."""
    try:
        rc = CLI_MODULE.main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_refused(rc, err, out_path, *needles):
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    assert not Path(out_path).exists()
    assert not [p for p in Path(out_path).parent.iterdir() if p.name.endswith('.tmp')]


def pycls_regnet(preset_name):
    """pycls's own RegNet built from its global cfg (REGNET params of a preset)."""
    from pycls.core.config import cfg
    from pycls.models.regnet import RegNet
    params = PRESETS[preset_name].params
    cfg.defrost()
    cfg.MODEL.NUM_CLASSES = 1000
    cfg.REGNET.DEPTH, cfg.REGNET.W0 = params.depth, params.w0
    cfg.REGNET.WA, cfg.REGNET.WM = params.wa, params.wm
    cfg.REGNET.GROUP_W, cfg.REGNET.BOT_MUL = params.group_width, params.bottleneck_ratio
    cfg.REGNET.SE_ON, cfg.REGNET.SE_R = params.se_ratio > 0, params.se_ratio or 0.25
    return RegNet()


# ------------------------------------------------------------------------------------------------
# torchvision: every RegNet it ships, numerically
# ------------------------------------------------------------------------------------------------
TV_MODELS = ['regnet_x_400mf', 'regnet_x_800mf', 'regnet_x_1_6gf', 'regnet_x_3_2gf', 'regnet_x_8gf',
             'regnet_x_16gf', 'regnet_x_32gf', 'regnet_y_400mf', 'regnet_y_800mf',
             'regnet_y_1_6gf', 'regnet_y_3_2gf', 'regnet_y_8gf', 'regnet_y_16gf', 'regnet_y_32gf',
             'regnet_y_128gf']


def test_tv_model_list_is_complete():
    import torchvision
    shipped = {n for n in torchvision.models.list_models() if n.startswith('regnet')}
    assert shipped == set(TV_MODELS)
    assert set(TV_PRESET) == shipped  # every one has a preset that names it


@pytest.mark.parametrize('name', TV_MODELS)
def test_torchvision_numerically(name, tmp_path):
    import torchvision
    torch.manual_seed(0)
    ref = randomise_(torchvision.models.get_model(name), seed=1)
    x = image()
    with torch.no_grad():
        expected = stages_torchvision(ref, x)
    if name == 'regnet_y_128gf':
        # 645M parameters: a 2.6 GB file written and read back costs ~20 s on 2 cores, so this one
        # converts the reference's state dict in memory (same code path after reading).
        converted = convert(ref.state_dict())
        del ref
        model = empty_backbone(converted.arch)
        model.load_state_dict(converted.state_dict, strict=True)
    else:
        path = tmp_path / f'{name}.pth'
        torch.save(ref.state_dict(), path)  # torchvision's layout: a plain state dict with fc
        del ref
        converted = read_converted(path)
        model = empty_backbone(converted.arch)
        load_pretrained(model, path)
    assert converted.source_format == 'torchvision'
    assert converted.arch == TV_PRESET[name]
    assert sorted(converted.dropped) == ['fc.bias', 'fc.weight']
    assert_same_stages(run_ours(model, x), expected)


# ------------------------------------------------------------------------------------------------
# timm: every X and Y model with a preset numerically (the _tv ones too); the rest by shape
# ------------------------------------------------------------------------------------------------
TIMM_NUMERIC = ['regnetx_002', 'regnetx_004', 'regnetx_004_tv', 'regnetx_006', 'regnetx_008',
                'regnetx_016', 'regnetx_032', 'regnetx_040', 'regnetx_064', 'regnetx_080',
                'regnetx_120', 'regnetx_160', 'regnetx_320', 'regnety_002', 'regnety_004',
                'regnety_006', 'regnety_008', 'regnety_008_tv', 'regnety_016', 'regnety_032',
                'regnety_040', 'regnety_064', 'regnety_080', 'regnety_080_tv', 'regnety_120',
                'regnety_160', 'regnety_320']


@pytest.mark.parametrize('name', TIMM_NUMERIC)
def test_timm_numerically(name, tmp_path):
    import timm
    torch.manual_seed(0)
    ref = randomise_(timm.create_model(name), seed=2)
    x = image(1)
    with torch.no_grad():
        expected = stages_sx(ref, x)
    path = tmp_path / f'{name}.pth'
    torch.save(ref.state_dict(), path)
    model = empty_backbone(TIMM_PRESET[name])
    loaded = load_pretrained(model, path)
    assert loaded.source_format == 'timm' and loaded.arch == TIMM_PRESET[name]
    assert sorted(loaded.dropped) == ['head.fc.bias', 'head.fc.weight']
    assert_same_stages(run_ours(model, x), expected)


def test_timm_every_size_by_shape():
    """Every timm RegNetX/Y maps to the preset that names it; the SEER-size ones (64-256GF, no
    numeric test: 2.6 GB and up) are checked from shapes only, built on 'meta'."""
    import timm
    names = timm.list_models('regnet[xy]_*')
    seen = {}
    for name in names:
        if name.endswith('_sgn'):
            continue  # GroupNorm + SiLU: not this backbone (refused below)
        model = timm.create_model(name, device='meta')
        seen[name] = convert(model.state_dict()).arch
    for name, preset in TIMM_PRESET.items():
        assert seen[name] == preset, name
    # timm's SEER-size regnety_1280 is torchvision's regnet_y_128gf (presets lack its timm name).
    assert seen['regnety_1280'] == 'regnety_128gf'
    assert seen['regnety_640'] is None and seen['regnety_2560'] is None  # no preset: custom
    with pytest.raises(NotRegNetError, match='missing'):
        convert(timm.create_model('regnety_040_sgn', device='meta').state_dict())


def test_timm_safetensors_via_cli(tmp_path, run_tool):
    import timm
    from safetensors.torch import save_file
    torch.manual_seed(0)
    ref = randomise_(timm.create_model('regnety_008_tv'), seed=3)
    x = image(2)
    with torch.no_grad():
        expected = stages_sx(ref, x)
    src = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(src))
    out = tmp_path / 'converted.pth'
    result = run_tool(CLI, src, out, '--arch', 'regnety_800mf_tv')
    assert result.returncode == 0, result.stderr
    assert 'timm' in result.stdout and 'regnety_800mf_tv' in result.stdout
    assert 'tensors dropped: 2' in result.stdout
    model = RegNetBackbone(arch='regnety_800mf_tv',
                           init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    model.init_weights()
    assert_same_stages(run_ours(model, x), expected)
    # the safetensors file also loads directly, without converting it first
    direct = empty_backbone('regnety_800mf_tv')
    load_pretrained(direct, src)
    assert_same_stages(run_ours(direct, x), expected)


# ------------------------------------------------------------------------------------------------
# pycls (BGR) through the CLI and directly
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('preset', ['regnetx_200mf', 'regnety_200mf', 'regnetx_3.2gf',
                                    'regnety_1.6gf'])
def test_pycls_numerically(preset, tmp_path, run_tool):
    torch.manual_seed(0)
    ref = randomise_(pycls_regnet(preset), seed=4)
    x = image(3)
    with torch.no_grad():
        expected = stages_sx(ref, x.flip(1))  # pycls weights see BGR
    path = tmp_path / f'{PRESETS[preset].pycls_name}_dds_8gpu.pyth'
    torch.save({'epoch': 100, 'model_state': ref.state_dict()}, path)
    model = empty_backbone(preset, in_channel_order='RGB')
    loaded = load_pretrained(model, path)
    assert loaded.source_format == 'pycls' and loaded.arch == preset
    assert loaded.native_order == 'BGR' and model.expected_channel_order == 'RGB'
    assert_same_stages(run_ours(model, x), expected)
    if preset == 'regnety_200mf':
        out = tmp_path / 'converted.pth'
        result = run_tool(CLI, path, out, '--src', 'pycls')
        assert result.returncode == 0, result.stderr
        assert 'format: pycls' in result.stdout and f'arch: {preset}' in result.stdout
        saved = torch.load(out, weights_only=True)
        meta = saved['meta']
        assert meta['source_format'] == 'pycls' and meta['arch'] == preset
        assert meta['channel_order'] == 'RGB' and meta['mean'] == [123.675, 116.28, 103.53]
        assert meta['std'] == [58.395, 57.12, 57.375] and len(meta['source_sha256']) == 64
        assert meta['spec']['widths'] == list(PRESETS[preset].spec.widths)
        # BN running stats and counters travel unchanged
        ref_sd = ref.state_dict()
        assert torch.equal(saved['state_dict']['layer3.1.norm2.running_var'],
                           ref_sd['s3.b2.f.b_bn.running_var'])
        assert torch.equal(saved['state_dict']['layer1.0.downsample.norm.num_batches_tracked'],
                           ref_sd['s1.b1.bn.num_batches_tracked'])
        model = RegNetBackbone(arch=preset, init_cfg=dict(type='Pretrained', checkpoint=str(out)))
        model.init_weights()
        assert_same_stages(run_ours(model, x), expected)


# ------------------------------------------------------------------------------------------------
# mmdet's RegNet (BGR, ResNet names, inside 'state_dict')
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', ['regnetx_400mf', 'regnetx_3.2gf'])
def test_mmdet_numerically(arch, tmp_path, run_tool):
    from mmdet.models.backbones import RegNet
    torch.manual_seed(0)
    ref = randomise_(RegNet(arch=arch), seed=5)
    x = image(4)
    with torch.no_grad():
        expected = ref(x.flip(1))  # mmdet's RegNet weights see BGR
    path = tmp_path / f'{arch}.pth'
    torch.save({'state_dict': ref.state_dict(), 'meta': {'epoch': 12}}, path)
    preset = next(n for n, p in PRESETS.items() if p.mmdet_name == arch)
    if arch == 'regnetx_400mf':
        out = tmp_path / 'converted.pth'
        result = run_tool(CLI, path, out, '--arch', preset)
        assert result.returncode == 0, result.stderr
        assert 'format: mmdet' in result.stdout
        model = RegNetBackbone(arch=preset, init_cfg=dict(type='Pretrained', checkpoint=str(out)))
        model.init_weights()
    else:
        model = empty_backbone(preset, in_channel_order='RGB')
        load_pretrained(model, path)
    assert_same_stages(run_ours(model, x), expected)

    # A detector checkpoint: 'backbone.' tensors are kept, neck and heads are dropped.
    detector = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    detector['neck.lateral_convs.0.conv.weight'] = torch.zeros(256, 96, 1, 1)
    converted = convert({'state_dict': detector, 'meta': {}})
    assert converted.source_format == 'mmdet' and converted.arch == preset
    assert converted.dropped == ['neck.lateral_convs.0.conv.weight']


# ------------------------------------------------------------------------------------------------
# export ours -> theirs -> ours, exactly; and into the reference model, numerically
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('fmt,arch', [('pycls', 'regnety_200mf'), ('torchvision', 'regnety_200mf'),
                                      ('timm', 'regnety_200mf'), ('mmdet', 'regnetx_200mf'),
                                      ('regnet_backbone', 'regnety_200mf')])
def test_round_trip_exact(fmt, arch):
    torch.manual_seed(0)
    ours = randomise_(RegNetBackbone(arch=arch), seed=6).state_dict()
    converted = convert(ours)
    assert converted.source_format == 'regnet_backbone' and converted.arch == arch
    exported = export_checkpoint(converted, fmt)
    back = convert(exported)
    assert back.source_format == fmt and back.arch == arch
    assert set(back.state_dict) == set(ours)
    for key, tensor in ours.items():
        assert torch.equal(back.state_dict[key], tensor), key
    if fmt in ('pycls', 'mmdet'):  # stored BGR: the first conv's input channels are reversed
        first_conv = 'stem.conv.weight' if fmt == 'pycls' else 'conv1.weight'
        stem = export_state_dict(ours, fmt)[first_conv]
        assert torch.equal(stem, ours['stem.conv.weight'].flip(1))


def test_regnety_cannot_export_to_mmdet():
    converted = convert(RegNetBackbone(arch='regnety_200mf').state_dict())
    with pytest.raises(CheckpointError, match='no SE'):
        export_checkpoint(converted, 'mmdet')


def test_export_runs_in_reference_models(tmp_path, run_tool):
    """Ours exported to torchvision (in memory) and pycls (through the CLI) gives the reference
    networks our outputs."""
    import torchvision
    torch.manual_seed(0)
    ours = randomise_(RegNetBackbone(arch='regnetx_400mf_tv'), seed=7)
    x = image(5)
    expected = run_ours(ours, x)
    tv = torchvision.models.regnet_x_400mf().eval()
    missing, unexpected = tv.load_state_dict(
        export_state_dict(ours.state_dict(), 'torchvision'), strict=False)
    assert sorted(missing) == ['fc.bias', 'fc.weight'] and not unexpected
    with torch.no_grad():
        assert_same_stages(stages_torchvision(tv, x), expected)

    ours = randomise_(RegNetBackbone(arch='regnety_200mf'), seed=8)
    expected = run_ours(ours, x)
    src = tmp_path / 'ours.pth'
    torch.save({'state_dict': ours.state_dict(), 'meta': {}}, src)
    out = tmp_path / 'exported.pyth'
    result = run_tool(CLI, src, out, '--to', 'pycls')
    assert result.returncode == 0, result.stderr
    ref = pycls_regnet('regnety_200mf').eval()
    missing, unexpected = ref.load_state_dict(
        torch.load(out, weights_only=True)['model_state'], strict=False)
    assert sorted(missing) == ['head.fc.bias', 'head.fc.weight'] and not unexpected
    with torch.no_grad():
        assert_same_stages(stages_sx(ref, x.flip(1)), expected)


@pytest.mark.parametrize('order', ['RGB', 'BGR'])
def test_mmdet_export_runs_in_mmdet_regnet(order):
    """Ours exported to mmdet's layout loads strictly into mmdet's own ``RegNet`` and gives our
    stage outputs in float64. mmdet's weights see BGR: when ours expect RGB, the export flips
    the first conv and the reference gets the channel-reversed image."""
    from mmdet.models.backbones import RegNet
    torch.manual_seed(0)
    ours = randomise_(RegNetBackbone(arch='regnetx_400mf', in_channel_order=order), seed=10)
    ours = ours.double()
    x = image(7).double()
    expected = run_ours(ours, x)
    ref = RegNet(arch='regnetx_400mf')
    ref.load_state_dict(export_state_dict(ours.state_dict(), 'mmdet', channel_order=order),
                        strict=True)
    ref = ref.double()
    ref.eval()  # mmdet's ResNet.train() returns None, so no chaining
    with torch.no_grad():
        got = ref(x.flip(1) if order == 'RGB' else x)
    assert len(got) == len(expected) == 4
    errors = [rel_err(a, b) for a, b in zip(expected, got)]
    assert max(errors) < 1e-10, errors
    assert all(g.abs().max() > 0 for g in got)
    if order == 'RGB':  # the flip matters: fed the unflipped image, mmdet's RegNet disagrees
        with torch.no_grad():
            assert rel_err(ref(x)[0], expected[0]) > 1e-3


def test_safetensors_output_loads(tmp_path, capsys):
    torch.manual_seed(0)
    ref = randomise_(RegNetBackbone(arch='regnetx_200mf'), seed=9)
    src = tmp_path / 'ours.pth'
    torch.save(ref.state_dict(), src)
    out = tmp_path / 'ours.safetensors'
    rc, stdout, err = cli_in_process(capsys, src, out)
    assert rc == 0, err
    assert read_checkpoint(out)['meta']['arch'] == 'regnetx_200mf'
    model = empty_backbone('regnetx_200mf')
    load_pretrained(model, out)
    x = image(6)
    assert_same_stages(run_ours(model, x), run_ours(ref, x))


# ------------------------------------------------------------------------------------------------
# strict loading: no silent partial load
# ------------------------------------------------------------------------------------------------
def test_load_pretrained_arch_mismatch_names_both(tmp_path):
    path = tmp_path / 'x800.pth'
    torch.save(RegNetBackbone(arch='regnetx_800mf').state_dict(), path)
    model = RegNetBackbone(arch='regnetx_400mf')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ArchitectureMismatchError) as info:
        load_pretrained(model, path)
    message = str(info.value)
    spec_ckpt, spec_model = PRESETS['regnetx_800mf'].spec, PRESETS['regnetx_400mf'].spec
    assert str(list(spec_ckpt.widths)) in message and str(list(spec_model.widths)) in message
    assert str(list(spec_ckpt.depths)) in message and "arch='regnetx_800mf'" in message
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing was copied


def test_load_pretrained_refuses_other_layers(tmp_path):
    path = tmp_path / 'x200.pth'
    torch.save(RegNetBackbone(arch='regnetx_200mf').state_dict(), path)
    model = RegNetBackbone(arch='regnetx_200mf', norm_cfg=dict(type='GN', num_groups=8))
    with pytest.raises(ArchitectureMismatchError, match='unexpected'):
        load_pretrained(model, path)


def test_incomplete_checkpoint_is_refused():
    sd = RegNetBackbone(arch='regnetx_200mf').state_dict()
    del sd['layer3.2.norm2.running_var']
    with pytest.raises(NotRegNetError, match='layer3.2.norm2.running_var'):
        convert(sd)
    sd = RegNetBackbone(arch='regnetx_200mf').state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith('num_batches_tracked')}
    assert len(convert(sd).filled) > 0  # older files without counters still convert


def test_format_detection_errors():
    with pytest.raises(AmbiguousFormatError):  # pycls, timm and ours all call it stem.conv
        convert({'stem.conv.weight': torch.zeros(32, 3, 3, 3)})
    with pytest.raises(UnknownFormatError, match='not a RegNet'):
        convert({'encoder.weight': torch.zeros(3)})
    tv = {'stem.0.weight': torch.zeros(32, 3, 3, 3)}
    with pytest.raises(UnknownFormatError, match='look like torchvision'):
        convert(tv, src='timm')


def test_docs_table_is_current():
    assert sources_table() in (ROOT / 'docs' / 'pretrained.md').read_text()


# ------------------------------------------------------------------------------------------------
# every bad input: one error line, non-zero exit, no output file
# ------------------------------------------------------------------------------------------------
class Evil:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.mark.parametrize('how', ['torch.save', 'pickle-protocol-2'])
def test_malicious_pickle_is_refused_and_not_run(how, tmp_path, capsys, run_tool):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    payload = {'state_dict': {'stem.conv.weight': torch.zeros(1)}, 'x': Evil(marker)}
    if how == 'torch.save':
        torch.save(payload, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(payload, f, protocol=2)
    out = tmp_path / 'out.pth'
    if how == 'torch.save':
        result = run_tool(CLI, path, out)  # once in a real process
        rc, err = result.returncode, result.stderr
    else:
        rc, _, err = cli_in_process(capsys, path, out)
    assert_refused(rc, err, out, 'refused')
    assert not marker.exists()


@pytest.fixture(scope='module')
def good_checkpoint(tmp_path_factory):
    """A small valid torchvision-layout file (regnet_x_400mf) to damage and misuse."""
    import torchvision
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('good') / 'regnet_x_400mf.pth'
    torch.save(torchvision.models.regnet_x_400mf().state_dict(), path)
    return path


def _bad_inputs(tmp_path, good):
    data = good.read_bytes()
    cases = {}
    cases['missing file'] = (tmp_path / 'nope.pth', [], 'no such file')
    (tmp_path / 'truncated.pth').write_bytes(data[:len(data) // 2])
    cases['truncated'] = (tmp_path / 'truncated.pth', [], 'truncated')
    corrupted = bytearray(data)
    corrupted[:64] = os.urandom(64)
    (tmp_path / 'corrupted.pth').write_bytes(bytes(corrupted))
    cases['corrupted'] = (tmp_path / 'corrupted.pth', [], 'corrupted')
    (tmp_path / 'empty.pth').write_bytes(b'')
    cases['empty'] = (tmp_path / 'empty.pth', [], 'empty')
    from safetensors.torch import save_file
    save_file({'a': torch.zeros(1000)}, str(tmp_path / 'whole.safetensors'))
    whole = (tmp_path / 'whole.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(whole[:len(whole) - 100])
    cases['truncated safetensors'] = (tmp_path / 'cut.safetensors', [], 'safetensors')
    import torchvision
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / 'resnet50.pth')
    cases['resnet50'] = (tmp_path / 'resnet50.pth', [], 'not a regnet')
    torch.save({'encoder.weight': torch.zeros(4)}, tmp_path / 'other.pth')
    cases['unknown format'] = (tmp_path / 'other.pth', [], 'not a regnet')
    torch.save({'stem.conv.weight': torch.zeros(32, 3, 3, 3)}, tmp_path / 'ambiguous.pth')
    cases['ambiguous format'] = (tmp_path / 'ambiguous.pth', [], 'several formats')
    torch.save({'epoch': 3, 'notes': 'no weights'}, tmp_path / 'nodict.pth')
    cases['no state dict'] = (tmp_path / 'nodict.pth', [], 'no state dict')
    cases['--arch mismatch'] = (good, ['--arch', 'regnetx_400mf'], 'regnetx_400mf_tv')
    cases['unknown --arch'] = (good, ['--arch', 'regnetx_9000mf'], 'unknown arch')
    cases['--src mismatch'] = (good, ['--src', 'pycls'], 'look like torchvision')
    cases['bad --src'] = (good, ['--src', 'caffe'], 'invalid choice')
    return cases


def test_every_bad_input_is_refused(tmp_path, good_checkpoint, capsys):
    for name, (src, extra, needle) in _bad_inputs(tmp_path, good_checkpoint).items():
        out = tmp_path / 'out' / 'converted.pth'
        out.parent.mkdir(exist_ok=True)
        rc, stdout, err = cli_in_process(capsys, src, out, *extra)
        assert_refused(rc, err, out, needle)


def test_bad_input_in_a_real_process(tmp_path, good_checkpoint, run_tool):
    torch.save(__import__('torchvision').models.resnet50().state_dict(), tmp_path / 'r50.pth')
    out = tmp_path / 'out.pth'
    result = run_tool(CLI, tmp_path / 'r50.pth', out)
    assert_refused(result.returncode, result.stderr, out, 'not a RegNet', '7x7')
    assert result.stdout == ''


def test_existing_output_needs_force(tmp_path, good_checkpoint, capsys):
    out = tmp_path / 'converted.pth'
    out.write_bytes(b'keep me')
    rc, _, err = cli_in_process(capsys, good_checkpoint, out)
    assert rc != 0 and err.startswith('error: ') and '--force' in err
    assert out.read_bytes() == b'keep me'
    rc, stdout, err = cli_in_process(capsys, good_checkpoint, out, '--force', '--arch',
                                     'regnetx_400mf_tv')
    assert rc == 0, err
    assert 'tensors converted' in stdout
    assert torch.load(out, weights_only=True)['meta']['arch'] == 'regnetx_400mf_tv'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['converted.pth']


def test_failed_write_leaves_nothing(tmp_path):
    from regnet_backbone.checkpoints import OutputExistsError, write_atomic

    def broken_saver(obj, path):
        Path(path).write_bytes(b'half a checkpoint')
        raise OSError(28, 'No space left on device')

    out = tmp_path / 'out.pth'
    with pytest.raises(CheckpointError, match='No space left'):
        write_atomic({'a': torch.zeros(1)}, out, saver=broken_saver)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b'old')
    with pytest.raises(OutputExistsError):
        write_atomic({'a': torch.zeros(1)}, out)
    with pytest.raises(CheckpointError):
        write_atomic({'a': torch.zeros(1)}, out, force=True, saver=broken_saver)
    assert out.read_bytes() == b'old' and sorted(p.name for p in tmp_path.iterdir()) == ['out.pth']
