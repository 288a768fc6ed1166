"""ImageNet pretraining with mmpretrain: the classification configs, the registry, the synthetic
classification set, tools/train.py on mmpretrain configs, and the classifier -> backbone
checkpoint round trip into a detector."""
import glob
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from regnet_backbone.demo.classification import CLASSES, make_synthetic_classification

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
CONVERT = osp.join(ROOT, 'tools', 'convert_pretrained.py')
CLS_CONFIGS = ['regnetx_400mf_8xb128_in1k.py', 'regnetx_3.2gf_8xb64_in1k.py',
               'regnety_1.6gf_8xb128_in1k.py', 'regnetx_400mf_1xb128-10e_in1k.py',
               'demo/regnetx_200mf_synthetic_cls.py']


def _load(name, **options):
    from regnet_backbone.runtime.config import load_config
    return load_config(osp.join(ROOT, 'configs', name), options or None)


# --- registry ------------------------------------------------------------------------------------
def test_mmpretrain_registry_builds_ours_and_keeps_its_regnet():
    import regnet_backbone  # noqa: F401
    from mmpretrain.models.backbones import RegNet as MmpretrainRegNet
    from mmpretrain.registry import MODELS

    from mmengine.registry import DefaultScope

    from regnet_backbone import RegNetBackbone
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # as mmpretrain's Runner builds
        model = MODELS.build(dict(type='RegNetBackbone', arch='regnetx_400mf'))
        theirs = MODELS.build(dict(type='RegNet', arch='regnetx_400mf'))
    assert type(model) is RegNetBackbone and type(theirs) is MmpretrainRegNet
    assert MODELS.get('RegNet') is MmpretrainRegNet
    assert model.out_indices == tuple(theirs.out_indices)  # mmpretrain's default, (3, )


#: What ``import regnet_backbone`` registers in mmengine's root registries (which mmdet's, mmseg's
#: and mmpretrain's fall back to), by the decorators where each class is defined.
REGISTERED = dict(MODELS=['RegNetBackbone'], WEIGHT_INITIALIZERS=['RegNetPretrained'],
                  HOOKS=['AtomicCheckpointHook', 'RegNetCheckpointHook', 'ChannelOrderCheckHook'],
                  RUNNERS=['RegNetRunner'])
#: Run in a fresh process: ``import regnet_backbone``, then what it imported and registered.
IMPORT_ONLY = """
import json, sys
import regnet_backbone
codebases = [m for m in ('mmdet', 'mmseg', 'mmpretrain', 'mmcv') if m in sys.modules]
from mmengine import registry
found = {f'{r}.{n}': getattr(getattr(registry, r).get(n), '__module__', None)
         for r, names in json.loads(sys.argv[1]).items() for n in names}
print(json.dumps(dict(codebases=codebases, found=found)))
"""


def test_import_registers_everything_and_imports_no_codebase(run_tool, explain):
    """``import regnet_backbone`` alone registers every class of ours that a config names, and
    imports neither mmdet, mmseg, mmpretrain nor mmcv."""
    proc = run_tool('-c', IMPORT_ONLY, json.dumps(REGISTERED))
    assert proc.returncode == 0, explain(proc)
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out['codebases'] == []
    assert len(out['found']) == sum(map(len, REGISTERED.values()))
    assert all(str(m).startswith('regnet_backbone.') for m in out['found'].values()), out['found']


# --- configs -------------------------------------------------------------------------------------
def test_recipe_follows_pycls():
    cfg = _load('regnetx_400mf_8xb128_in1k.py')
    opt = cfg.optim_wrapper.optimizer
    # pycls dds_baselines: SGD 0.9 (Nesterov), wd 5e-5, lr 0.8 for 1024 images, 100 epochs,
    # 5 warm-up epochs, cosine; 224 crops, 256 resize + 224 centre crop for testing.
    assert (opt.type, opt.momentum, opt.nesterov, opt.weight_decay) == ('SGD', 0.9, True, 5e-5)
    total = cfg.train_dataloader.batch_size * 8
    assert opt.lr / total == pytest.approx(0.8 / 1024)
    assert cfg.train_cfg.max_epochs == 100
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end, cosine.type, cosine.begin, cosine.end) == \
        ('LinearLR', 5, 'CosineAnnealingLR', 5, 100)
    assert [t['type'] for t in cfg.train_pipeline][1] == 'RandomResizedCrop'
    assert cfg.train_pipeline[1]['scale'] == 224
    resize, crop = cfg.test_pipeline[1], cfg.test_pipeline[2]
    assert (resize['scale'], crop['crop_size']) == (256, 224)
    pre = cfg.model.data_preprocessor
    assert pre.to_rgb and pre.mean == [123.675, 116.28, 103.53]
    big = _load('regnetx_3.2gf_8xb64_in1k.py')
    assert big.optim_wrapper.optimizer.lr / (big.train_dataloader.batch_size * 8) == \
        pytest.approx(0.8 / 1024)
    short = _load('regnetx_400mf_1xb128-10e_in1k.py')
    # The paper's design-space protocol: 10 epochs, batch 128, lr 0.05, cosine.
    assert (short.train_cfg.max_epochs, short.train_dataloader.batch_size,
            short.optim_wrapper.optimizer.lr) == (10, 128, 0.05)
    assert [s['type'] for s in short.param_scheduler] == ['CosineAnnealingLR']


@pytest.mark.parametrize('name', CLS_CONFIGS)
def test_classification_config_builds_and_steps(name):
    import regnet_backbone  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    from regnet_backbone import RegNetBackbone
    cfg = _load(name)
    assert cfg.default_scope == 'mmpretrain'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert isinstance(model.backbone, RegNetBackbone)
    assert model.backbone.out_channels[-1] == cfg.model.head.in_channels
    num_classes = cfg.model.head.num_classes
    size = 64
    data = dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
                        for _ in range(2)],
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(2)])
    model.train()
    batch = model.data_preprocessor(data, True)
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    model.eval()
    with torch.no_grad():
        preds = model.test_step(data)
    assert len(preds) == 2
    scores = preds[0].pred_score
    assert scores.shape == (num_classes, ) and torch.isfinite(scores).all()
    assert float(scores.sum()) == pytest.approx(1.0, abs=1e-5)


# --- the synthetic classification set -----------------------------------------------------------
def test_synthetic_classification_images_show_their_class(monkeypatch):
    # On a flat black background with white shapes, the class must be readable off the pixels:
    # as many connected blobs as the class says (shapes never touch), of the class's shape.
    from regnet_backbone.demo import classification as gen
    monkeypatch.setattr(gen, 'background', lambda rng, size: np.zeros((size, size, 3)))
    monkeypatch.setattr(gen, 'shape_colour', lambda rng, image: np.full(3, 255.0))
    seen = set()
    for index in range(60):
        image, label = gen.render_image(3, 'train', index, 64)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        seen.add(label)
        name = CLASSES[label]
        count, blobs = cv2.connectedComponents((image[..., 0] > 127).astype(np.uint8))
        assert count - 1 == int(name[0]), (index, name)
        for k in range(1, count):
            contour = cv2.findContours((blobs == k).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)[0][0]
            area = cv2.contourArea(contour)
            hull = cv2.convexHull(contour)
            (_, _), radius = cv2.minEnclosingCircle(contour)
            fill_circle = area / (np.pi * radius**2)
            corners = len(cv2.approxPolyDP(hull, 0.06 * cv2.arcLength(hull, True), True))
            if name.endswith(('circle', 'circles')):
                assert fill_circle > 0.75, (index, name, fill_circle)
            elif name.endswith(('triangle', 'triangles')):
                assert corners == 3, (index, name, corners)
            else:
                assert corners == 4, (index, name, corners)
    assert seen == set(range(len(CLASSES)))
    assert CLASSES == ('1_circle', '2_circles', '1_rectangle', '2_rectangles', '1_triangle',
                       '2_triangles')


def test_synthetic_classification_is_deterministic_and_guarded(tmp_path):
    a = make_synthetic_classification(str(tmp_path / 'a'), num_train=12, num_val=6, size=48)
    b = make_synthetic_classification(str(tmp_path / 'b'), num_train=12, num_val=6, size=48)
    files_a = sorted(osp.relpath(p, a) for p in glob.glob(osp.join(a, '*', '*', '*.png')))
    files_b = sorted(osp.relpath(p, b) for p in glob.glob(osp.join(b, '*', '*', '*.png')))
    assert files_a == files_b and len(files_a) == 18
    for rel in files_a:
        assert open(osp.join(a, rel), 'rb').read() == open(osp.join(b, rel), 'rb').read()
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not a synthetic classification set'):
        make_synthetic_classification(str(foreign), num_train=2, num_val=2, size=32)
    assert (foreign / 'notes.txt').read_text() == 'keep me'


# --- tools/train.py on mmpretrain configs, and the classifier -> detector round trip -----------
def _tiny_options(root, epochs):
    options = [f'{split}_dataloader.{key}'
               for split in ('train', 'val', 'test')
               for key in ('num_workers=0', 'persistent_workers=False', 'batch_size=8',
                           f'dataset.data_root={root}')]
    return options + [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
                      'default_hooks.checkpoint.interval=1',
                      'default_hooks.checkpoint.max_keep_ckpts=3']


@pytest.fixture(scope='module')
def cls_run(tmp_path_factory, run_tool, explain):
    """A classifier trained one epoch, then resumed for a second, through tools/train.py."""
    base = tmp_path_factory.mktemp('cls')
    data = make_synthetic_classification(str(base / 'data'), num_train=16, num_val=8, size=32)
    work = base / 'work'
    config = 'configs/demo/regnetx_200mf_synthetic_cls.py'
    first = run_tool(TRAIN, config, '--work-dir', work, '--cfg-options', *_tiny_options(data, 1))
    assert first.returncode == 0, explain(first)
    second = run_tool(TRAIN, config, '--work-dir', work, '--resume', '--cfg-options',
                      *_tiny_options(data, 2))
    assert second.returncode == 0, explain(second)
    return dict(work=work, data=data, first=first, second=second, config=config)


def test_train_tool_trains_and_resumes_a_classifier(cls_run):
    work = cls_run['work']
    assert (work / 'epoch_1.pth').is_file() and (work / 'epoch_2.pth').is_file()
    log = cls_run['second'].stdout + cls_run['second'].stderr
    assert 'resumed epoch: 1' in log  # mmengine's line when resuming after epoch 1
    assert 'accuracy/top1' in log
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 2


def test_missing_imagenet_stops_with_one_line(tmp_path, run_tool, explain):
    proc = run_tool(TRAIN, osp.join(ROOT, 'configs', 'regnetx_400mf_8xb128_in1k.py'),
                    '--work-dir', tmp_path / 'w', cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and 'data/imagenet' in lines[0], explain(proc)
    assert 'Traceback' not in proc.stderr


def test_classifier_checkpoint_round_trip_into_mask_rcnn(cls_run, tmp_path, run_tool, explain):
    """Classifier checkpoint -> backbone checkpoint -> the Mask R-CNN config's backbone: the
    stage outputs equal the classifier's own backbone's, exactly."""
    import regnet_backbone  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from regnet_backbone.checkpoints.io import allow_runner_checkpoints
    from regnet_backbone.runtime.config import load_config
    source = cls_run['work'] / 'epoch_2.pth'
    out = tmp_path / 'ckpt' / 'regnetx_200mf_cls.pth'  # the folder does not exist yet
    proc = run_tool(CONVERT, source, out)
    assert proc.returncode == 0, explain(proc)
    meta = torch.load(out, map_location='cpu', weights_only=True)['meta']
    # The converted file records the accuracy mmpretrain logged at the checkpoint's validation.
    runner = torch.load(source, map_location='cpu', weights_only=False)
    logged = runner['message_hub']['log_scalars']['val/accuracy/top1'].current()
    assert meta['classifier_accuracy']['top1'] == pytest.approx(float(logged))
    assert meta['classifier_accuracy']['epoch'] == 2 and meta['arch'] == 'regnetx_200mf'

    allow_runner_checkpoints()
    cls_cfg = load_config(osp.join(ROOT, cls_run['config']))
    from mmpretrain.registry import MODELS as CLS_MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = CLS_MODELS.build(cls_cfg.model)
    load_checkpoint(classifier, str(source), map_location='cpu', strict=True)

    det_cfg = load_config(osp.join(ROOT, 'configs', 'mask_rcnn_regnetx_3.2gf_fpn.py'), {
        'model.backbone.arch': 'regnetx_200mf',
        'model.backbone.init_cfg.checkpoint': str(out),
        'model.neck.in_channels': [24, 56, 152, 368]})
    from mmdet.registry import MODELS as DET_MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = DET_MODELS.build(det_cfg.model)
    detector.init_weights()

    x = torch.randn(2, 3, 64, 64)
    classifier.backbone.eval()
    detector.backbone.eval()
    classifier.backbone.out_indices = detector.backbone.out_indices
    with torch.no_grad():
        ours = detector.backbone(x)
        theirs = classifier.backbone(x)
    assert len(ours) == 4
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_study_setup_on_the_short_imagenet_schedule(tmp_path):
    """A design-space study on the paper's protocol: trials of the 10-epoch classification
    config, ranked by top-1 (error = 100 - top-1), each head as wide as its sampled last stage."""
    from mmengine.config import Config

    from regnet_backbone.design.presets import resolve_arch
    from regnet_backbone.design.results import metric_to_error
    from regnet_backbone.study import setup
    study = setup(osp.join(ROOT, 'configs', 'regnetx_400mf_1xb128-10e_in1k.py'),
                  str(tmp_path / 'study'), space='anynetx_a', n=3, seed=0,
                  flops=(360e6, 400e6))
    assert study['metric'] == 'accuracy/top1' and study['codebase'] == 'mmpretrain'
    assert metric_to_error('accuracy/top1', 76.5) == pytest.approx(23.5)
    for trial in study['trials']:
        cfg = Config.fromfile(str(tmp_path / 'study' / 'trials' / trial['trial'] / 'config.py'))
        widths = resolve_arch(trial['arch']).widths
        assert cfg.model.head.in_channels == widths[-1]
        assert cfg.model.backbone.arch == trial['arch'] and 'init_cfg' not in cfg.model.backbone
        assert cfg.train_cfg.max_epochs == 10
