"""Migrating from mmdet's and mmpretrain's ``RegNet``: their configs, their weights, their detectors.

Every RegNet config file that the installed mmdet and mmpretrain ship (read from their
``.mim/configs/regnet/``, not from a copy) is migrated the way a user does it: ``type='RegNet'``
becomes ``type='RegNetBackbone'`` and nothing else changes, with the incumbent's own (random)
weights saved to a file and named in ``init_cfg``. Our stage outputs must equal the incumbent's,
in float64, on the same input: the weights keep their BGR order because those configs feed BGR.
The reference is always the incumbent's module, never our code.
"""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import regnet_backbone  # noqa: F401  (registers RegNetBackbone and the hooks)
from regnet_backbone.checkpoints import convert_file, read_checkpoint
from regnet_backbone.runtime.hooks import (ChannelOrderCheckHook, ChannelOrderError,
                                           RegNetCheckpointHook, use_regnet_hooks)
from regnet_backbone.runtime.hooks.channel_order import check_channel_order

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
TOL = 1e-10  # float64: the same arithmetic in another order stays far below this


def _config_dir(package: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).parent / '.mim' / 'configs' / 'regnet'


MMDET_CONFIGS = sorted(_config_dir('mmdet').glob('*.py'))
MMPRETRAIN_CONFIGS = sorted(_config_dir('mmpretrain').glob('*.py'))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_installed_codebases_ship_the_configs_this_file_migrates():
    assert len(MMDET_CONFIGS) == 26 and len(MMPRETRAIN_CONFIGS) == 8


def registry(codebase: str):
    if codebase == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.registry import MODELS
    else:
        import mmpretrain.models  # noqa: F401
        from mmpretrain.registry import MODELS
    return MODELS


def build(codebase: str, cfg):
    """``cfg`` built in ``codebase``'s registry, under its default scope (as its tools do)."""
    from mmengine.registry import DefaultScope
    models = registry(codebase)
    with DefaultScope.overwrite_default_scope(codebase):
        return models.build(cfg)


def randomise_(model: nn.Module, seed: int) -> nn.Module:
    """Random BN statistics and affine parameters, conv biases, and DCN offset convs (mmcv
    zero-initialises them, which would make a deformable conv a plain one)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.2, generator=g)
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
            elif isinstance(m, nn.Conv2d) and name.endswith('conv_offset'):
                m.weight.normal_(0.0, 0.05, generator=g)
                m.bias.normal_(0.0, 0.5, generator=g)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0.0, 0.2, generator=g)
    model.eval()
    return model


def stages(model, x):
    model.double()
    model.eval()  # mmdet's ResNet.train() returns None: no chaining
    with torch.no_grad():
        return list(model(x))


def assert_same(ours, refs):
    assert len(ours) == len(refs) and refs
    for a, b in zip(ours, refs):
        assert a.shape == b.shape
        err = ((a - b).norm() / b.norm()).item()
        assert err < TOL, err
        assert b.abs().max() > 0


def image(seed=0, size=SIZE):
    return torch.randn(1, 3, size, size, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


def backbone_of(path: Path) -> dict:
    from mmengine.config import Config
    return copy.deepcopy(Config.fromfile(str(path)).model.backbone.to_dict())


_REFERENCES = {}


def incumbent(codebase: str, backbone: dict, tmp: Path, wrapped: bool):
    """The incumbent's backbone with random weights, saved to a file (mmdet's converted pycls
    files are a plain state dict; a Runner-style ``{'state_dict', 'meta'}`` file also occurs)."""
    key = (codebase, repr(sorted((k, repr(v)) for k, v in backbone.items()
                                 if k not in ('init_cfg', 'frozen_stages', 'norm_eval'))))
    if key not in _REFERENCES:
        cfg = dict(backbone, init_cfg=None)
        ref = build(codebase, cfg)
        ref.init_weights()
        randomise_(ref, seed=len(_REFERENCES))
        _REFERENCES[key] = ref
    ref = _REFERENCES[key]
    path = tmp / f'incumbent_{codebase}.pth'
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {}} if wrapped else state, path)
    return ref, path


@pytest.mark.parametrize('path', MMDET_CONFIGS + MMPRETRAIN_CONFIGS,
                         ids=lambda p: f'{p.parents[3].name}/{p.name}')
def test_incumbent_config_migrates_by_changing_the_type(path, tmp_path):
    codebase = 'mmdet' if path in MMDET_CONFIGS else 'mmpretrain'
    theirs = backbone_of(path)
    assert theirs['type'] == 'RegNet'
    ref, weights = incumbent(codebase, theirs, tmp_path, wrapped=len(path.name) % 2 == 0)
    ours_cfg = dict(theirs, type='RegNetBackbone',
                    init_cfg=dict(type='Pretrained', checkpoint=str(weights)))
    ours = build(codebase, ours_cfg)
    ours.init_weights()
    assert ours.expected_channel_order == 'BGR'  # mmdet's weights, kept as they are
    x = image(1)
    assert_same(stages(ours, x), stages(ref, x))


def test_deformable_convs_sit_where_mmdet_puts_them(tmp_path):
    path = next(p for p in MMDET_CONFIGS if 'mdconv' in p.name)
    theirs = backbone_of(path)
    assert theirs['stage_with_dcn'] == (False, True, True, True)
    ours = build('mmdet', dict(theirs, type='RegNetBackbone', init_cfg=None))
    from mmcv.ops import ModulatedDeformConv2dPack
    assert type(ours.layer1[0].conv2) is nn.Conv2d
    for name in ('layer2', 'layer3', 'layer4'):
        assert all(isinstance(block.conv2, ModulatedDeformConv2dPack)
                   for block in getattr(ours, name))
    # The offsets matter: with them zeroed the outputs change (the test above is not vacuous).
    ref, weights = incumbent('mmdet', theirs, tmp_path, wrapped=True)
    x = image(2)
    before = stages(ref, x)
    zeroed = copy.deepcopy(ref)
    for m in zeroed.modules():
        if isinstance(m, ModulatedDeformConv2dPack):
            nn.init.zeros_(m.conv_offset.weight)
            nn.init.zeros_(m.conv_offset.bias)
    after = stages(zeroed, x)
    assert (before[-1] - after[-1]).norm() > 1e-3 * before[-1].norm()


PLUGINS = [
    dict(cfg=dict(type='ContextBlock', ratio=1. / 4), stages=(False, True, True, True),
         position='after_conv3'),
    dict(cfg=dict(type='GeneralizedAttention', spatial_range=-1, num_heads=8,
                  attention_type='0010', kv_stride=2), stages=(False, False, True, True),
         position='after_conv2'),
    dict(cfg=dict(type='NonLocal2d', reduction=4), stages=(False, False, False, True),
         position='after_conv1'),
]


def test_plugins_migrate_with_their_weights(tmp_path):
    theirs = dict(type='RegNet', arch='regnetx_400mf', plugins=PLUGINS, out_indices=(0, 1, 2, 3))
    ref, weights = incumbent('mmdet', theirs, tmp_path, wrapped=True)
    with torch.no_grad():  # plugins whose last layer starts at zero would be invisible
        for name, p in ref.named_parameters():
            if '_block' in name:
                p.normal_(0.0, 0.05)
    torch.save({'state_dict': ref.state_dict(), 'meta': {}}, weights)
    ours = build('mmdet', dict(theirs, type='RegNetBackbone',
                                        init_cfg=dict(type='Pretrained', checkpoint=str(weights))))
    ours.init_weights()
    assert hasattr(ours.layer2[0], 'context_block') and not hasattr(ours.layer1[0],
                                                                   'context_block')
    assert hasattr(ours.layer4[0], 'nonlocal_block') and hasattr(ours.layer3[0],
                                                                 'gen_attention_block')
    x = image(3, size=96)
    assert_same(stages(ours, x), stages(ref, x))


# --- RGB: converted files, our configs, and the combinations that cannot be right --------------
def mmdet_400mf_weights(tmp_path):
    theirs = dict(type='RegNet', arch='regnetx_400mf', out_indices=(0, 1, 2, 3))
    return incumbent('mmdet', theirs, tmp_path, wrapped=True)


def test_converted_rgb_file_in_our_rgb_config_matches_the_incumbent_on_rgb(tmp_path):
    from mmengine.config import Config
    ref, weights = mmdet_400mf_weights(tmp_path)
    rgb = tmp_path / 'regnetx_400mf_rgb.pth'
    convert_file(weights, rgb)
    assert read_checkpoint(rgb)['meta']['channel_order'] == 'RGB'
    ours_cfg = Config.fromfile(str(ROOT / 'configs' / 'mask_rcnn_regnetx_400mf_fpn.py'))
    backbone = ours_cfg.model.backbone.to_dict()
    assert backbone['in_channel_order'] == 'RGB'
    x = image(4)
    expected = stages(ref, x.flip(1))  # mmdet's weights see the same image as BGR
    for source in (rgb, weights):  # the converted file, and mmdet's file converted on the fly
        ours = build('mmdet', dict(backbone, init_cfg=dict(type='Pretrained',
                                                                    checkpoint=str(source))))
        ours.init_weights()
        assert_same(stages(ours, x), expected)


def build_detector(config: Path, checkpoint: Path, **backbone):
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.update(type='RegNetBackbone', arch='regnetx_400mf',
                              init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)),
                              **backbone)
    cfg.model.neck.in_channels = [32, 64, 160, 384]
    model = build('mmdet', cfg.model)
    model.init_weights()
    return model


MMDET_400MF = next(p for p in MMDET_CONFIGS if p.name.startswith('mask-rcnn_regnetx-400MF'))
#: Feeds BGR with pycls's statistics, as most of mmdet's RegNet configs (built at 400MF here).
MMDET_BGR = next(p for p in MMDET_CONFIGS if p.name == 'mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py')


def test_mmdets_rgb_fed_3x_configs_are_caught_feeding_rgb_to_bgr_weights(tmp_path):
    """mmdet's four Mask R-CNN ms-poly-3x RegNet configs inherit the R50 preprocessor (RGB,
    ImageNet mean in RGB order) while their open-mmlab:// ImageNet weights are pycls's BGR ones.
    Migrated as they are, the run is refused; declaring RGB converts the weights instead."""
    from mmengine.config import Config
    pre = Config.fromfile(str(MMDET_400MF)).model.data_preprocessor
    assert pre.bgr_to_rgb is True and pre.mean == [123.675, 116.28, 103.53]
    _, weights = mmdet_400mf_weights(tmp_path)
    with pytest.raises(ChannelOrderError, match='expects BGR'):
        check_channel_order(build_detector(MMDET_400MF, weights))
    check_channel_order(build_detector(MMDET_400MF, weights, in_channel_order='RGB'))


def test_rgb_file_in_a_bgr_config_is_refused_with_one_line(tmp_path):
    _, weights = mmdet_400mf_weights(tmp_path)
    rgb = tmp_path / 'rgb.pth'
    convert_file(weights, rgb)
    check_channel_order(build_detector(MMDET_BGR, weights))  # native BGR in a BGR config: fine
    model = build_detector(MMDET_BGR, rgb)
    with pytest.raises(ChannelOrderError) as info:
        check_channel_order(model)
    message = str(info.value)
    assert '\n' not in message and 'expects RGB' in message and 'feeds BGR' in message
    assert "in_channel_order='BGR'" in message
    # The fix it names works: the RGB file converted back to BGR on load.
    check_channel_order(build_detector(MMDET_BGR, rgb, in_channel_order='BGR'))


def test_declared_order_against_the_preprocessor_and_a_mean_in_the_wrong_order(tmp_path):
    _, weights = mmdet_400mf_weights(tmp_path)
    model = build_detector(MMDET_BGR, weights, in_channel_order='RGB')
    with pytest.raises(ChannelOrderError, match='declared by in_channel_order'):
        check_channel_order(model)
    model.data_preprocessor._channel_conversion = True  # bgr_to_rgb=True, mean still BGR
    with pytest.raises(ChannelOrderError, match='mean is the ImageNet mean in BGR order'):
        check_channel_order(model)


def test_our_tools_add_the_hooks_and_the_hook_checks_before_each_loop(tmp_path):
    from mmengine.config import Config
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook')]))
    use_regnet_hooks(cfg)
    use_regnet_hooks(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook', 'RegNetCheckpointHook',
                                                     'ChannelOrderCheckHook']
    _, weights = mmdet_400mf_weights(tmp_path)
    rgb = tmp_path / 'rgb.pth'
    convert_file(weights, rgb)
    runner = type('Runner', (), {'model': build_detector(MMDET_BGR, rgb)})()
    for stage in ('before_train', 'before_val', 'before_test'):
        with pytest.raises(ChannelOrderError):
            getattr(ChannelOrderCheckHook(), stage)(runner)


# --- mmdet's arguments --------------------------------------------------------------------------
def test_pretrained_is_mapped_to_init_cfg_with_mmdets_warning(tmp_path):
    _, weights = mmdet_400mf_weights(tmp_path)
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = regnet_backbone.RegNetBackbone(arch='regnetx_400mf', pretrained=str(weights))
    assert model.init_cfg == dict(type='Pretrained', checkpoint=str(weights))
    with pytest.raises(ValueError, match='cannot be given together'):
        regnet_backbone.RegNetBackbone(arch='regnetx_400mf', pretrained=str(weights),
                                       init_cfg=dict(type='Pretrained', checkpoint='x'))


@pytest.mark.parametrize('kwargs,word', [(dict(base_channels=64), 'base_channels'),
                                         (dict(deep_stem=True), 'deep_stem'),
                                         (dict(avg_down=True), 'avg_down'),
                                         (dict(in_channel_order='rgb'), 'in_channel_order'),
                                         (dict(dcn=dict(type='DCNv2', fallback_on_stride=True),
                                               stage_with_dcn=(False, True, True, True)),
                                          'fallback_on_stride'),
                                         (dict(plugins=[dict(cfg=dict(type='ContextBlock',
                                                                      ratio=0.25),
                                                             position='after_conv4')]),
                                          'position')])
def test_variants_a_regnet_does_not_have_are_refused_in_one_line(kwargs, word):
    with pytest.raises(ValueError) as info:
        regnet_backbone.RegNetBackbone(arch='regnetx_200mf', **kwargs)
    assert word in str(info.value) and '\n' not in str(info.value)
    # mmdet's defaults are accepted
    regnet_backbone.RegNetBackbone(arch='regnetx_200mf', base_channels=32, deep_stem=False,
                                   avg_down=False)


# --- whole detectors ---------------------------------------------------------------------------
def mmdet_detector_cfg():
    from mmengine.config import Config
    cfg = Config.fromfile(str(MMDET_400MF))
    cfg.model.backbone.init_cfg = None
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep every detection
    cfg.model.test_cfg.rcnn.max_per_img = 20
    pipeline = [t for t in cfg.test_dataloader.dataset.pipeline
                if t['type'] != 'LoadAnnotations']  # images without annotations
    for transform in pipeline:
        if transform['type'] == 'Resize':
            transform['scale'] = (128, 128)
    cfg.test_dataloader.dataset.pipeline = pipeline
    return cfg


def demo_images(tmp_path, count=2):
    import cv2
    from regnet_backbone.demo.synthetic import make_synthetic_coco
    data = make_synthetic_coco(str(tmp_path / 'data'), num_train=1, num_val=count, size=128)
    folder = Path(data.root) / 'val'
    return [cv2.imread(str(p)) for p in sorted(folder.glob('*.*'))[:count]]


def predict(model, cfg, images):
    from mmdet.apis import inference_detector
    from mmengine.registry import DefaultScope
    model.cfg = cfg
    model.eval()
    with torch.no_grad(), DefaultScope.overwrite_default_scope('mmdet'):
        return [r.pred_instances for r in inference_detector(model, images)]


def assert_same_predictions(ours, theirs):
    for a, b in zip(ours, theirs):
        assert len(b.scores) > 0
        torch.testing.assert_close(a.bboxes, b.bboxes, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        assert torch.equal(a.labels, b.labels)
        agree = (a.masks == b.masks).float().mean().item()
        assert agree > 0.9999, agree


def test_mmdet_mask_rcnn_checkpoint_is_translated_and_predicts_the_same(tmp_path, run_tool):
    cfg = mmdet_detector_cfg()
    theirs = build('mmdet', cfg.model)
    theirs.init_weights()
    randomise_(theirs, seed=11)
    source = tmp_path / 'mask_rcnn_regnetx_400mf_mmdet.pth'
    # Saved as mmengine's Runner saves it: the config text goes into meta['cfg'].
    torch.save({'meta': {'mmdet_version': '3.3.0', 'cfg': cfg.pretty_text},
                'state_dict': theirs.state_dict()}, source)
    images = demo_images(tmp_path)
    expected = predict(theirs, cfg, images)

    out = tmp_path / 'mask_rcnn_regnetx_400mf_ours.pth'
    proc = run_tool(ROOT / 'tools' / 'convert_pretrained.py', source, out, '--whole-model')
    assert proc.returncode == 0, proc.stderr
    assert 'trained on RGB input' in proc.stdout  # what this 3x config's preprocessor feeds
    translated = read_checkpoint(out)
    assert translated['meta']['regnet_channel_order'] == {'backbone.': 'RGB'}
    kept = {k for k in theirs.state_dict() if not k.startswith('backbone.')}
    assert kept <= set(translated['state_dict'])
    for key in kept:
        assert torch.equal(translated['state_dict'][key], theirs.state_dict()[key])

    ours_cfg = copy.deepcopy(cfg)
    ours_cfg.model.backbone.type = 'RegNetBackbone'
    ours = build('mmdet', ours_cfg.model)
    ours.load_state_dict(translated['state_dict'], strict=True)
    assert_same_predictions(predict(ours, ours_cfg, images), expected)

    # load_from / tools/test.py: the hook translates mmdet's own file on the fly, in place.
    ours = build('mmdet', ours_cfg.model)
    checkpoint = torch.load(source, map_location='cpu', weights_only=False)
    runner = type('Runner', (), {'model': ours})()
    RegNetCheckpointHook().after_load_checkpoint(runner, checkpoint)
    ours.load_state_dict(checkpoint['state_dict'], strict=True)
    assert ours.backbone.expected_channel_order == 'RGB'
    check_channel_order(ours)
    assert_same_predictions(predict(ours, ours_cfg, images), expected)


def test_whole_model_flag_refuses_a_bare_backbone_and_writes_nothing(tmp_path, run_tool):
    _, weights = mmdet_400mf_weights(tmp_path)
    out = tmp_path / 'out.pth'
    proc = run_tool(ROOT / 'tools' / 'convert_pretrained.py', weights, out, '--whole-model')
    assert proc.returncode != 0 and not out.exists()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'drop --whole-model' in lines[0], proc.stderr


def test_a_training_checkpoint_records_its_backbone_order(tmp_path):
    _, weights = mmdet_400mf_weights(tmp_path)
    model = build_detector(MMDET_BGR, weights)
    runner = type('Runner', (), {'model': model})()
    checkpoint = {'meta': {}, 'state_dict': model.state_dict()}
    RegNetCheckpointHook().before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['regnet_channel_order'] == {'backbone.': 'BGR'}
    # Loaded into a backbone that declares RGB, the recorded BGR first conv is converted.
    rgb_model = build_detector(MMDET_BGR, weights, in_channel_order='RGB')
    stem = checkpoint['state_dict']['backbone.stem.conv.weight'].clone()
    RegNetCheckpointHook().after_load_checkpoint(type('Runner', (), {'model': rgb_model})(),
                                                 checkpoint)
    assert torch.equal(checkpoint['state_dict']['backbone.stem.conv.weight'], stem.flip(1))
    assert rgb_model.backbone.expected_channel_order == 'RGB'


def without_scope(node):
    if isinstance(node, dict):
        return {k: without_scope(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(without_scope(v) for v in node)
    return node


MIGRATION_CONFIGS = sorted((ROOT / 'configs' / 'migration').glob('*.py'))


@pytest.mark.parametrize('path', MIGRATION_CONFIGS, ids=lambda p: p.name)
def test_shipped_migration_configs_change_only_the_type(path):
    from mmengine.config import Config
    ours = Config.fromfile(str(path)).to_dict()
    codebase = 'mmdet' if 'coco' in path.name else 'mmpretrain'
    theirs = Config.fromfile(str(_config_dir(codebase) / path.name)).to_dict()
    assert ours.pop('custom_imports') == dict(imports=['regnet_backbone'],
                                              allow_failed_imports=False)
    assert ours['model']['backbone'] == dict(theirs['model']['backbone'], type='RegNetBackbone')
    ours['model']['backbone']['type'] = 'RegNet'
    assert without_scope(ours) == theirs  # mmengine tags what a cross-package base defines
    model = build(codebase, Config.fromfile(str(path)).model)
    assert type(model.backbone).__name__ == 'RegNetBackbone'
