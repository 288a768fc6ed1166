"""The installed stack is real: compiled mmcv ops run, mmdet and mmseg import."""
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_these_are_the_project_tests():
    # mmsegmentation's wheel ships a top-level `tests` package; pytest must collect ours.
    assert Path(__file__).resolve().parent == ROOT / 'tests'


#: The pins of each stack tools/setup_env.sh builds (`make test-oldest` sets REGNET_STACK).
STACK_PINS = {'default': 'constraints.txt', 'oldest': 'constraints-oldest.txt'}


def test_torch_is_the_pinned_release():
    pins = ROOT / 'requirements' / STACK_PINS[os.environ.get('REGNET_STACK', 'default')]
    pinned = next(line.split('==')[1] for line in pins.read_text().splitlines()
                  if line.startswith('torch=='))
    assert torch.__version__.split('+')[0] == pinned


def test_mmcv_nms_runs():
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    # boxes 0 and 1 overlap with IoU 81/100 > 0.5, so box 1 is suppressed.
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)


def test_mmcv_roi_align_runs():
    from mmcv.ops import RoIAlign
    feats = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])  # (batch index, x1, y1, x2, y2)
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feats, rois)
    assert out.shape == (1, 1, 2, 2)
    # Averaging a linear ramp over each quarter gives the value at the quarter's centre.
    assert torch.allclose(out.flatten(), torch.tensor([2.5, 4.5, 10.5, 12.5]))


def test_mmdet_and_mmseg_models_import():
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmdet.registry import MODELS
    assert MODELS.get('MaskRCNN') is not None


def test_import_needs_only_torch_and_mmengine():
    code = ('import sys, regnet_backbone; '
            'bad = [m for m in ("mmdet", "mmseg", "mmcv", "mmpretrain") if m in sys.modules]; '
            'print(bad)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == '[]'
