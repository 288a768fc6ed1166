"""mmdet's, mmseg's and mmpretrain's OWN tools/train.py and tools/test.py with this plugin.

Most users start runs with the tools shipped inside the installed packages
(``<site-packages>/mmdet/.mim/tools/train.py``), not with ours. Each config below is one of our
configs shrunk for a CPU (conftest's tiny Mask R-CNN and UperNet, the ones tests/test_tools.py
runs) plus exactly the lines of :data:`STOCK_TOOL_LINES`, the lines a user adds for the stock
tools. The
tools run as subprocesses outside the checkout (conftest's ``run_tool``: this checkout first on
``PYTHONPATH``).
"""
import importlib
import os.path as osp
import re

import pytest
import torch

from regnet_backbone import RegNetBackbone
from regnet_backbone.demo.classification import make_synthetic_classification
from regnet_backbone.demo.synthetic import CLASSES, make_synthetic_coco

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: What a config needs for the stock tools: our modules registered, mmdet-name translation and
#: the channel-order check, and RegNetRunner, whose strict loading reads the Runner's own
#: checkpoints on torch >= 2.6 (mmengine's plain Runner refuses them; mmseg's test.py ignores it).
STOCK_TOOL_LINES = """\
custom_imports = dict(imports=['regnet_backbone'], allow_failed_imports=False)
custom_hooks = [dict(type='RegNetCheckpointHook'), dict(type='ChannelOrderCheckHook')]
runner_type = 'RegNetRunner'
"""

TV_ARCH = 'regnetx_400mf_tv'  # torchvision's regnet_x_400mf (its own width rounding)

CLS = """
loader = dict(batch_size=8, num_workers=0, persistent_workers=False,
              dataset=dict(data_root={data!r}))
train_dataloader = loader
val_dataloader = loader
test_dataloader = loader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
"""

# The converted (RGB) weights fed BGR: the backbone takes its order from the weights it loads.
BGR_FEED = """
model = dict(
    data_preprocessor=dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
                           bgr_to_rgb=False),
    backbone=dict(in_channel_order=None))
"""


def stock_tool(codebase, name):
    package = importlib.import_module(codebase)
    return osp.join(osp.dirname(package.__file__), '.mim', 'tools', name)


@pytest.fixture(scope='module')
def ok(run_tool):
    """``ok(SCRIPT, *args, cwd=DIR)``: run it (conftest's ``run_tool``), require exit 0, return
    the log (stdout and stderr)."""
    def run(*args, cwd):
        proc = run_tool(*args, cwd=cwd, check=True)
        return proc.stdout + proc.stderr
    return run


def write_config(path, base, body=''):
    """``base`` (under configs/, or a path) + :data:`STOCK_TOOL_LINES` + ``body``."""
    base = base if osp.isabs(base) else osp.join(ROOT, 'configs', base)
    path.write_text(f'_base_ = {str(base)!r}\n{STOCK_TOOL_LINES}{body}')
    return path


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    return make_synthetic_coco(tmp_path_factory.mktemp('synthetic'), num_train=4, num_val=2,
                               size=64, seed=0)


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory, ok):
    """A randomly initialised torchvision RegNetX-400MF, converted by tools/convert_pretrained.py:
    (the converted file, its state dict). Its BN statistics are those of one batch of noise, as
    after training: with the initial ones (mean 0, variance 1) the features of a random network
    in eval mode grow to ~1e7 and the detector finds nothing to evaluate."""
    import torchvision
    tmp = tmp_path_factory.mktemp('pretrained')
    torch.manual_seed(0)
    model = torchvision.models.regnet_x_400mf()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = this batch's
    with torch.no_grad():
        model(torch.randn(8, 3, 64, 64))
    torch.save(model.state_dict(), tmp / 'regnet_x_400mf.pth')
    out = tmp / f'{TV_ARCH}_rgb.pth'
    ok(osp.join(ROOT, 'tools', 'convert_pretrained.py'), tmp / 'regnet_x_400mf.pth', out,
       '--arch', TV_ARCH, cwd=tmp)
    return out, torch.load(out, map_location='cpu', weights_only=True)['state_dict']


@pytest.fixture(scope='module')
def det_run(synthetic, pretrained, tmp_path_factory, ok, tiny_mask_rcnn):
    """mmdet's train.py: Mask R-CNN, 2 iterations from the converted weights, with the recipe's
    frozen stem and stage 1 and frozen BN statistics."""
    tmp = tmp_path_factory.mktemp('det')
    # The heads are random and the backbone's residual branches are not zero-initialised: two
    # steps at lr 0.01 blow the features up (~1e9) and validation finds no box.
    body = tiny_mask_rcnn(
        data=synthetic.root + '/', classes=CLASSES, lr=1e-5,
        backbone=dict(arch=TV_ARCH,
                      init_cfg=dict(type='Pretrained', checkpoint=str(pretrained[0]))),
        in_channels=list(RegNetBackbone(TV_ARCH).out_channels))
    config = write_config(tmp / 'mask_rcnn_tiny.py', 'mask_rcnn_regnetx_3.2gf_fpn.py', body)
    log = ok(stock_tool('mmdet', 'train.py'), config, '--work-dir', tmp / 'work', cwd=tmp)
    return config, tmp / 'work', log


def test_mmdet_train_loads_the_converted_weights_and_trains(det_run, pretrained):
    _, work, log = det_run
    assert re.search(r'coco/bbox_mAP: \d', log)  # validation at the last iteration
    state = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    trained = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    converted = pretrained[1]
    assert trained.keys() == converted.keys()
    for key, value in converted.items():
        change = (trained[key].double() - value.double()).abs().max()
        if key.startswith(('stem.', 'layer1.')):  # frozen_stages=1, norm_eval=True
            assert change == 0, key
        elif 'conv' in key:  # two steps at lr 1e-5 from the converted values; another random
            assert 0 < change < 0.1 * value.abs().max(), key  # init differs by their own size


def test_mmdet_test_evaluates_the_trained_checkpoint(det_run, ok):
    config, work, _ = det_run
    log = ok(stock_tool('mmdet', 'test.py'), config, work / 'iter_2.pth',
             '--work-dir', work.parent / 'test', cwd=work.parent)
    assert re.search(r'coco/bbox_mAP: \d', log) and re.search(r'coco/segm_mAP: \d', log)


def test_mmdet_train_refuses_bgr_input_for_rgb_weights(det_run, run_tool, explain):
    config, work, _ = det_run
    bgr = write_config(work.parent / 'bgr_feed.py', str(config), BGR_FEED)
    proc = run_tool(stock_tool('mmdet', 'train.py'), bgr, '--work-dir', work.parent / 'bgr',
                    cwd=work.parent)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]  # the traceback's exception line
    assert last.endswith(
        'ChannelOrderError: model.backbone expects '
        'RGB input (the order of the weights it loaded) but model.data_preprocessor feeds BGR '
        "(bgr_to_rgb=False); set model.backbone.in_channel_order='BGR' to convert the weights to "
        'it, or feed RGB (bgr_to_rgb=True, mean and std in RGB order).'), explain(proc)
    assert 'Iter(train)' not in proc.stdout + proc.stderr  # stopped before the first iteration
    assert not list((work.parent / 'bgr').rglob('*.pth'))


@pytest.fixture(scope='module')
def seg_run(synthetic, tmp_path_factory, ok, tiny_upernet):
    """mmseg's train.py: UperNet with SyncBN, 1 iteration."""
    tmp = tmp_path_factory.mktemp('seg')
    config = write_config(tmp / 'upernet_tiny.py', 'demo/upernet_regnetx_400mf_synthetic.py',
                          tiny_upernet(data=synthetic.root + '/'))
    log = ok(stock_tool('mmseg', 'train.py'), config, '--work-dir', tmp / 'work', cwd=tmp)
    return config, tmp / 'work', log


def test_mmseg_train_upernet(seg_run):
    _, work, log = seg_run
    assert re.search(r'mIoU: \d', log)  # validation after the iteration
    assert (work / 'iter_1.pth').is_file()


def test_mmseg_test_upernet(seg_run, ok):
    config, work, _ = seg_run
    log = ok(stock_tool('mmseg', 'test.py'), config, work / 'iter_1.pth',
             '--work-dir', work.parent / 'test', cwd=work.parent)
    assert re.search(r'mIoU: \d', log)


def test_mmpretrain_train_and_test_classifier(tmp_path, ok):
    data = make_synthetic_classification(str(tmp_path / 'data'), num_train=16, num_val=8,
                                         size=32)
    config = write_config(tmp_path / 'cls_tiny.py', 'demo/regnetx_200mf_synthetic_cls.py',
                          CLS.format(data=data))
    log = ok(stock_tool('mmpretrain', 'train.py'), config, '--work-dir', tmp_path / 'work',
             cwd=tmp_path)
    assert re.search(r'accuracy/top1: \d', log)
    log = ok(stock_tool('mmpretrain', 'test.py'), config, tmp_path / 'work' / 'epoch_1.pth',
             '--work-dir', tmp_path / 'test', cwd=tmp_path)
    assert re.search(r'accuracy/top1: \d', log)


def test_readme_shows_exactly_these_lines():
    readme = open(osp.join(ROOT, 'README.md')).read()
    shown = readme.split('<!-- stock-tools:start -->\n```python\n')[1].split('```')[0]
    assert shown == STOCK_TOOL_LINES
