"""Every config in configs/ loads, builds, and wires the backbone's channels into its heads.

The four detectors and UperNet also run a training step (loss, backward) and a predict step on
the CPU, with RegNetX-400MF swapped in and small images to stay fast.
"""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch

import mmdet  # noqa: F401  (a missing codebase fails the tests, it does not skip them)
import mmseg  # noqa: F401
from mmengine.config import Config
from mmengine.registry import DefaultScope

import regnet_backbone  # noqa: F401  (registers RegNetBackbone)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs')
# Detection and segmentation configs; the ImageNet classification ones (*_in1k.py) are
# tested in test_pretrain.py.
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))
                 if not p.endswith('_in1k.py'))
RGB_MEAN, RGB_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
SMALL_ARCH = 'regnetx_400mf'

# Keys by which a family member may differ from the config it inherits from.
FAMILY_KEYS = {'arch', 'model.backbone.arch', 'model.backbone.init_cfg.checkpoint',
               'model.neck.in_channels', 'model.decode_head.in_channels',
               'model.auxiliary_head.in_channels'}


def load(name: str, **overrides) -> Config:
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.model.backbone.init_cfg = None  # no pretrained file in tests
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def build(cfg: Config):
    """Build ``cfg.model`` in its codebase's registry."""
    scope = cfg.default_scope
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)


def neck_or_head_channels(model):
    """What the model feeds with the backbone's outputs: {name: channels as the head sees them}."""
    if hasattr(model, 'neck'):
        return {'neck': list(model.neck.in_channels)}
    out = {'decode_head': list(model.decode_head.in_channels)}
    if getattr(model, 'auxiliary_head', None) is not None:
        aux = model.auxiliary_head
        out['auxiliary_head'] = (aux.in_channels, aux.in_index)
    return out


def test_configs_exist():
    assert 'mask_rcnn_regnetx_3.2gf_fpn.py' in CONFIGS
    kinds = {name.split('_regnet')[0] for name in CONFIGS}
    assert {'mask_rcnn', 'faster_rcnn', 'retinanet', 'cascade_mask_rcnn', 'upernet'} <= kinds


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_with_matching_channels(name):
    cfg = load(name)
    assert cfg.custom_imports.imports == ['regnet_backbone']
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.type == 'RegNetBackbone'
    # The checkpoint convention, and RGB input with ImageNet statistics (what converted weights
    # expect, and what every config's backbone declares), for every config.
    raw = Config.fromfile(osp.join(CONFIG_DIR, name)).model.backbone.init_cfg
    if name.endswith('_scratch.py'):  # from-scratch recipes load no weights
        assert raw is None
    else:
        assert raw == dict(type='Pretrained',
                           checkpoint=f'checkpoints/{backbone_cfg.arch}_rgb.pth')
    pre = cfg.model.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr_to_rgb) == (RGB_MEAN, RGB_STD, True)
    assert backbone_cfg.in_channel_order == 'RGB'

    model = build(cfg)
    out_channels = list(model.backbone.out_channels)
    wired = neck_or_head_channels(model)
    if 'neck' in wired:
        assert wired['neck'] == out_channels
    else:
        assert wired['decode_head'] == out_channels
        in_channels, in_index = wired['auxiliary_head']
        assert in_index == 2 and in_channels == out_channels[2]


def _flatten(node, prefix=''):
    if isinstance(node, dict):
        items = {}
        for key, value in node.items():
            items.update(_flatten(value, f'{prefix}{key}.'))
        return items
    return {prefix[:-1]: node}


def _family_head(name):
    """The config a family member varies: same name with regnetx_3.2gf as the arch."""
    head = re.sub(r'regnet[xy]_[0-9.]+(mf|gf)', 'regnetx_3.2gf', name)
    return head if head != name and head in CONFIGS else None


FAMILY = [name for name in CONFIGS if _family_head(name)]


def test_every_family_is_populated():
    heads = {_family_head(name) for name in FAMILY}
    assert 'mask_rcnn_regnetx_3.2gf_fpn.py' in heads
    assert len([n for n in FAMILY if n.startswith('mask_rcnn_')]) >= 7
    assert any(n.startswith('upernet_') for n in FAMILY)


@pytest.mark.parametrize('name', FAMILY)
def test_family_differs_only_in_arch_and_channels(name):
    member = _flatten(Config.fromfile(osp.join(CONFIG_DIR, name)).to_dict())
    head = _flatten(Config.fromfile(osp.join(CONFIG_DIR, _family_head(name))).to_dict())
    differing = {k for k in member.keys() | head.keys() if member.get(k) != head.get(k)}
    assert differing and differing <= FAMILY_KEYS, differing - FAMILY_KEYS


def test_mask_rcnn_follows_mmdet_regnet_recipe():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'mask_rcnn_regnetx_3.2gf_fpn.py'))
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.02, momentum=0.9,
                                               weight_decay=0.00005)
    backbone = cfg.model.backbone
    assert (backbone.arch, backbone.frozen_stages, backbone.norm_eval) == ('regnetx_3.2gf', 1, True)
    assert backbone.init_cfg.checkpoint == 'checkpoints/regnetx_3.2gf_rgb.pth'
    assert cfg.model.neck.in_channels == [96, 192, 432, 1008]
    assert cfg.train_cfg.max_epochs == 12
    ms3x = Config.fromfile(osp.join(CONFIG_DIR, 'mask_rcnn_regnetx_3.2gf_fpn_ms-3x.py'))
    assert ms3x.train_cfg.max_epochs == 36
    assert ms3x.train_dataloader.dataset.pipeline[2].type == 'RandomChoiceResize'
    retina = Config.fromfile(osp.join(CONFIG_DIR, 'retinanet_regnetx_3.2gf_fpn.py'))
    assert retina.optim_wrapper.clip_grad.max_norm == 35
    assert retina.optim_wrapper.optimizer.weight_decay == 0.00005


def test_upernet_follows_mmseg_recipe():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py'))
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.decode_head.pool_scales == (1, 2, 3, 6)
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150
    assert cfg.model.auxiliary_head.in_index == 2
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.model.data_preprocessor.size == (512, 512)


# --- a training step and a prediction on the CPU ------------------------------------------------
def _small(name: str) -> Config:
    """``name`` with RegNetX-400MF, heads rewired to its channels, CPU-friendly RoIAlign."""
    cfg = load(name, **{'model.backbone.arch': SMALL_ARCH})
    channels = list(build_backbone(cfg).out_channels)
    if 'neck' in cfg.model:
        cfg.model.neck.in_channels = channels
    else:
        cfg.model.decode_head.in_channels = channels
        cfg.model.auxiliary_head.in_channels = channels[2]
    # mmcv's CPU RoIAlign is slow with adaptive sampling (sampling_ratio=0).
    roi_head = cfg.model.get('roi_head', {})
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractors = roi_head.get(key)
        for extractor in extractors if isinstance(extractors, list) else [extractors]:
            if extractor:
                extractor.roi_layer.sampling_ratio = 2
    # Fewer proposals and RoI samples: the 1024-wide box head costs ~13 GMACs per 1024 RoIs.
    train_cfg, test_cfg = cfg.model.get('train_cfg', {}), cfg.model.get('test_cfg', {})
    for stage_cfg in (train_cfg.get('rpn_proposal'), test_cfg.get('rpn')):
        if stage_cfg:
            stage_cfg.update(nms_pre=200, max_per_img=64)
    rcnn = train_cfg.get('rcnn')
    for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
        if stage:
            stage.sampler.num = 32
    return cfg


def build_backbone(cfg):
    from mmengine.registry import MODELS
    return MODELS.build(cfg.model.backbone)


def _det_batch(num_classes, size=96, seed=0):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        boxes, masks = [], []
        for _ in range(3):
            x0, y0 = rng.integers(0, size // 2, 2)
            w, h = rng.integers(12, size // 2, 2)
            boxes.append([x0, y0, x0 + w, y0 + h])
            mask = np.zeros((size, size), np.uint8)
            mask[y0:y0 + h, x0:x0 + w] = 1
            masks.append(mask)
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                             img_id=0, batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.from_numpy(rng.integers(0, num_classes, 3)),
            masks=BitmapMasks(masks, size, size))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _seg_batch(num_classes, size=64, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        label = torch.from_numpy(rng.integers(0, num_classes, (1, size, size)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _train_then_predict(model, batch):
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert all(np.isfinite(float(v)) for v in log_vars.values()), log_vars
    loss.backward()
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    assert trainable and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, training=False)
        return model(**data, mode='predict')


DETECTORS = ['mask_rcnn_regnetx_3.2gf_fpn.py', 'faster_rcnn_regnetx_3.2gf_fpn.py',
             'retinanet_regnetx_3.2gf_fpn.py', 'cascade_mask_rcnn_regnetx_3.2gf_fpn_ms-3x.py']


@pytest.mark.parametrize('name', DETECTORS)
def test_detector_trains_and_predicts_on_cpu(name):
    torch.manual_seed(0)
    cfg = _small(name)
    model = build(cfg)
    assert model.backbone.frozen_stages == 1
    num_classes = 80
    size = 96
    results = _train_then_predict(model, _det_batch(num_classes, size))
    assert len(results) == 2
    with_masks = 'mask' in name
    for sample in results:
        pred = sample.pred_instances
        n = len(pred)
        assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n, )
        assert pred.labels.shape == (n, ) and (n == 0 or int(pred.labels.max()) < num_classes)
        if with_masks:
            assert tuple(pred.masks.shape) == (n, size, size)
        else:
            assert 'masks' not in pred


def test_upernet_trains_and_predicts_on_cpu():
    torch.manual_seed(0)
    cfg = _small('upernet_regnetx_3.2gf_4xb4-160k_ade20k-512x512.py')
    cfg.model.data_preprocessor.size = (64, 64)
    model = build(cfg)
    results = _train_then_predict(model, _seg_batch(150, size=64))
    assert len(results) == 2
    for sample in results:
        assert tuple(sample.pred_sem_seg.data.shape) == (1, 64, 64)
        assert tuple(sample.seg_logits.data.shape) == (150, 64, 64)
        assert int(sample.pred_sem_seg.data.max()) < 150
