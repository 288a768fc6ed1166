"""RegNetBackbone: shapes, the OpenMMLab backbone contract and registration.

Widths, strides and parameter counts are checked against timm's RegNet of the same preset (built
on the 'meta' device: shapes only, no weights) and against pycls's published model zoo, never
against this package's own tables.
"""
import math

import pytest
import torch
import torch.nn as nn

from regnet_backbone import RegNetBackbone

#: Our preset -> timm's model of the same network (timm's ``_tv`` ones are torchvision's).
TIMM_NAME = {'regnetx_200mf': 'regnetx_002', 'regnety_200mf': 'regnety_002',
             'regnetx_400mf_tv': 'regnetx_004_tv', 'regnetx_3.2gf': 'regnetx_032',
             'regnety_1.6gf': 'regnety_016'}


def _timm_stages(arch):
    """(widths, strides) of timm's four stages ``s1``..``s4``, from its ``feature_info``."""
    import timm
    model = timm.create_model(TIMM_NAME[arch], num_classes=0, device='meta')
    stages = [f for f in model.feature_info if f['module'] in ('s1', 's2', 's3', 's4')]
    return (tuple(f['num_chs'] for f in stages), tuple(f['reduction'] for f in stages))


def _ceil_div(size, stride):
    return math.ceil(size / stride)


@pytest.mark.parametrize('arch', ['regnetx_200mf', 'regnety_200mf', 'regnetx_400mf_tv'])
def test_output_shapes(arch):
    widths, strides = _timm_stages(arch)
    assert strides == (4, 8, 16, 32)
    model = RegNetBackbone(arch).eval()
    assert model.out_channels == widths
    assert model.out_strides == strides
    for size in [(64, 64), (97, 131), (33, 50)]:
        with torch.no_grad():
            outs = model(torch.randn(2, 3, *size))
        assert len(outs) == 4
        for out, width, stride in zip(outs, widths, strides):
            # Every conv is 'same'-padded, so each stride-2 step rounds the size up.
            expected = size
            for _ in range(int(math.log2(stride))):
                expected = tuple(_ceil_div(s, 2) for s in expected)
            assert out.shape == (2, width, *expected)


def test_dilated_stages_keep_resolution():
    model = RegNetBackbone('regnetx_200mf', strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [16, 8, 8, 8]
    assert model.out_strides == (4, 8, 8, 8)
    conv2 = model.layer4[1].conv2
    assert conv2.dilation == (4, 4) and conv2.padding == (4, 4)


def test_out_indices_subset():
    model = RegNetBackbone('regnetx_200mf', out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    # RegNetX-200MF's published stage widths are 24, 56, 152 and 368 (pycls model zoo).
    assert [o.shape[1] for o in outs] == [56, 368]
    assert model.out_channels == (56, 368)


@pytest.mark.parametrize('arch, pycls_params, last_width', [
    # pycls MODEL_ZOO params (1000-class head included) and the last stage's published width
    ('regnetx_200mf', 2684792, 368), ('regnety_200mf', 3162996, 368),
    ('regnetx_3.2gf', 15296552, 1008), ('regnety_1.6gf', 11202430, 888),
])
def test_parameter_count_matches_timm_and_pycls(arch, pycls_params, last_width):
    import timm
    with torch.device('meta'):  # shapes only: no weights are initialised
        model = RegNetBackbone(arch)
    ours = sum(p.numel() for p in model.parameters())
    reference = timm.create_model(TIMM_NAME[arch], num_classes=0, device='meta')
    assert ours == sum(p.numel() for p in reference.parameters())  # timm, without its head
    assert ours == pycls_params - (last_width * 1000 + 1000)  # minus the fc's weight and bias


def test_block_structure_follows_paper():
    model = RegNetBackbone('regnety_200mf')
    block = model.layer2[0]  # 24 -> 56 channels, stride 2, group width 8
    assert block.conv1.kernel_size == (1, 1) and block.conv1.out_channels == 56
    assert block.conv2.kernel_size == (3, 3) and block.conv2.stride == (2, 2)
    assert block.conv2.groups == 56 // 8
    # SE squeezes to round(0.25 * block input width) = round(0.25 * 24) = 6.
    assert block.se.fc1.out_channels == 6
    assert block.downsample is not None and block.downsample.conv.stride == (2, 2)
    assert model.layer3[1].downsample is None
    assert model.stem.conv.stride == (2, 2) and model.stem.conv.out_channels == 32


def test_frozen_stages_stay_frozen_after_train():
    # norm_eval=False: the unfrozen stages' BN must train (mmdet's default freezes every BN)
    model = RegNetBackbone('regnetx_200mf', frozen_stages=2, norm_eval=False)
    model.train()
    for module in (model.stem, model.layer1, model.layer2):
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in (model.layer3, model.layer4):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    # Frozen BN statistics do not move in a training forward.
    before = model.layer1[0].norm1.running_mean.clone()
    model(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert torch.equal(before, model.layer1[0].norm1.running_mean)
    assert not torch.equal(torch.zeros_like(model.layer3[0].norm1.running_mean),
                           model.layer3[0].norm1.running_mean)


def test_frozen_stem_only():
    model = RegNetBackbone('regnetx_200mf', frozen_stages=0).train()
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.layer1.parameters())


def test_norm_eval_keeps_bn_in_eval_mode():
    model = RegNetBackbone('regnetx_200mf', norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(p.requires_grad for p in model.parameters())
    model.eval().train()
    assert all(not m.training for m in bns)


@pytest.mark.parametrize('arch', ['regnetx_200mf', 'regnety_200mf'])
def test_with_cp_same_outputs_and_gradients(arch):
    torch.manual_seed(0)
    plain = RegNetBackbone(arch, zero_init_residual=False)
    plain.init_weights()
    ckpt = RegNetBackbone(arch, with_cp=True, zero_init_residual=False)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (plain, ckpt):
        model.train()
        xi = x.clone().requires_grad_(True)
        outs = model(xi)
        sum((o * (i + 1)).sum() for i, o in enumerate(outs)).backward()
        results.append((outs, xi.grad, {n: p.grad for n, p in model.named_parameters()}))
    (outs_a, gx_a, g_a), (outs_b, gx_b, g_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(gx_a, gx_b)
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], msg=name)


@pytest.mark.parametrize('norm_cfg, layer', [
    (dict(type='BN'), nn.BatchNorm2d),
    (dict(type='SyncBN'), nn.SyncBatchNorm),
    (dict(type='GN', num_groups=8), nn.GroupNorm),
])
def test_norm_cfg(norm_cfg, layer):
    model = RegNetBackbone('regnetx_200mf', norm_cfg=norm_cfg)
    assert isinstance(model.layer3[0].norm2, layer)
    assert isinstance(model.stem.norm, layer)
    if layer is not nn.SyncBatchNorm:
        model.train()(torch.randn(2, 3, 32, 32))


def test_norm_requires_grad_false():
    model = RegNetBackbone('regnetx_200mf', norm_cfg=dict(type='BN', requires_grad=False))
    assert not model.layer1[0].norm1.weight.requires_grad
    assert model.layer1[0].conv1.weight.requires_grad


def test_zero_init_residual():
    model = RegNetBackbone('regnetx_200mf')
    model.init_weights()
    assert all(torch.all(b.norm3.weight == 0) for layer in (model.layer1, model.layer4)
               for b in layer)
    model = RegNetBackbone('regnetx_200mf', zero_init_residual=False)
    model.init_weights()
    assert torch.all(model.layer1[0].norm3.weight == 1)
    # pycls init: conv weights ~ N(0, sqrt(2 / fan_out)), fan_out = k * k * out_channels.
    weight = model.layer3[0].conv1.weight
    assert abs(weight.std().item() - math.sqrt(2.0 / weight.shape[0])) < 0.01


def test_in_channels_and_stem_channels():
    model = RegNetBackbone('regnetx_200mf', in_channels=1, stem_channels=16).eval()
    assert model.layer1[0].conv1.in_channels == 16
    assert model(torch.randn(1, 1, 32, 32))[0].shape == (1, 24, 8, 8)


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='regnetx_3gf'), "unknown RegNet arch 'regnetx_3gf'; did you mean 'regnetx_32gf'? valid"),
    (dict(arch=dict(w0=24, wa=36.44)), 'missing'),
    (dict(out_indices=(0, 4)), 'out_indices (0, 4) out of range'),
    (dict(out_indices=(2, 1)), 'increasing and unique'),
    (dict(frozen_stages=5), 'frozen_stages=5 out of range'),
    (dict(frozen_stages=-2), 'frozen_stages=-2 out of range'),
    (dict(strides=(2, 2, 2)), 'one entry per stage'),
    (dict(dilations=(1, 1, 2, 4, 4)), 'one entry per stage'),
    (dict(norm_cfg=dict(type='GN')), "needs 'num_groups'"),
])
def test_bad_arguments(kwargs, message):
    kwargs.setdefault('arch', 'regnetx_200mf')
    with pytest.raises(ValueError) as info:
        RegNetBackbone(**kwargs)
    assert message in str(info.value)


def test_builds_from_mmdet_and_mmseg_registries():
    import regnet_backbone  # noqa: F401  (registers RegNetBackbone)
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmseg.registry import MODELS as MMSEG_MODELS
    cfg = dict(type='RegNetBackbone', arch='regnetx_400mf', out_indices=(0, 1, 2, 3),
               frozen_stages=1, norm_eval=True)
    for registry in (MMDET_MODELS, MMSEG_MODELS):
        model = registry.build(cfg)
        assert isinstance(model, RegNetBackbone)
        assert model.out_channels == (32, 64, 160, 384)  # RegNetX-400MF, pycls zoo
    # mmdet's own RegNet is still there, untouched.
    assert MMDET_MODELS.get('RegNet').__module__.startswith('mmdet')


def test_mmdet_style_arch_dict_migrates():
    # The arch dict of mmdet's RegNet configs works unchanged.
    mmdet_arch = dict(w0=88, wa=26.31, wm=2.25, group_w=48, depth=25, bot_mul=1.0)
    # RegNetX-3.2GF: mmdet's configs give its FPN in_channels=[96, 192, 432, 1008].
    assert RegNetBackbone(arch=mmdet_arch).out_channels == (96, 192, 432, 1008)
