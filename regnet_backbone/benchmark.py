"""Side-by-side backbone timing: ours against mmdet's RegNet, torchvision and timm.

Fairness rules: every candidate runs in one process on the same input, rounds are interleaved
(A B C A B C ...) so drifts of the machine hit all of them alike, each candidate is warmed up
first, and the reported time is the median over rounds. Speeds are reported as ratios to mmdet's
eager NCHW model, the rival users have today.
"""
import gc
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .design.complexity import complexity
from .design.presets import get_preset, resolve_arch
from .models import RegNetBackbone


@dataclass
class Candidate:
    """One model to time. ``build`` returns a module mapping images to a tuple of features."""
    name: str
    build: Callable[[], nn.Module]
    channels_last: bool = False
    inference_only: bool = False
    training_only: bool = False


class _Features(nn.Module):
    """Run ``stem`` then ``stages`` and return every stage output (for foreign models)."""

    def __init__(self, stem: nn.Module, stages: List[nn.Module]):
        super().__init__()
        self.stem, self.stages = stem, nn.ModuleList(stages)

    def forward(self, x):
        x, outs = self.stem(x), []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)


def _ours(arch: str, channels_last=False, deploy=False, with_cp=False) -> Callable[[], nn.Module]:
    def build():
        model = RegNetBackbone(arch, channels_last=channels_last, with_cp=with_cp,
                               zero_init_residual=False)
        model.init_weights()
        return model.switch_to_deploy() if deploy else model
    return build


def _mmdet(mmdet_name: str) -> Callable[[], nn.Module]:
    def build():
        from mmdet.models.backbones import RegNet
        # mmdet's ResNet family defaults to norm_eval=True (BN frozen in train mode, as in its
        # detection recipes); every other candidate trains its BN, so the training rows would
        # compare unequal work. norm_eval=False makes all of them update BN statistics.
        model = RegNet(arch=mmdet_name, out_indices=(0, 1, 2, 3), norm_eval=False)
        model.init_weights()
        return model
    return build


def _torchvision(tv_name: str) -> Callable[[], nn.Module]:
    def build():
        import torchvision.models as tvm
        model = getattr(tvm, tv_name)()
        trunk = model.trunk_output
        return _Features(model.stem, [trunk.block1, trunk.block2, trunk.block3, trunk.block4])
    return build


def _timm(timm_name: str) -> Callable[[], nn.Module]:
    def build():
        import timm
        return _TupleOut(timm.create_model(timm_name, features_only=True, out_indices=(1, 2, 3, 4)))
    return build


class _TupleOut(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(self.model(x))


def candidates_for(arch: str, rivals: bool = True) -> List[Candidate]:
    """Our variants plus every rival implementation that ships ``arch``."""
    preset = get_preset(arch)
    result = []
    if rivals and preset.mmdet_name:
        result.append(Candidate('mmdet RegNet (NCHW)', _mmdet(preset.mmdet_name)))
    result += [
        Candidate('ours (NCHW)', _ours(arch)),
        Candidate('ours channels_last', _ours(arch, channels_last=True), channels_last=True),
        Candidate('ours deploy + channels_last', _ours(arch, channels_last=True, deploy=True),
                  channels_last=True, inference_only=True),
        Candidate('ours with_cp (NCHW)', _ours(arch, with_cp=True), training_only=True),
    ]
    if rivals and preset.torchvision_name:
        result.append(Candidate('torchvision (NCHW)', _torchvision(preset.torchvision_name)))
    if rivals and preset.timm_name:
        result.append(Candidate('timm (NCHW)', _timm(preset.timm_name)))
    return result


def measure_sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Achieved fp32 matrix-multiply GFLOP/s (2 n^3 flops per product): the machine's peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def _step(model: nn.Module, x: torch.Tensor, mode: str) -> None:
    if mode == 'inference':
        with torch.inference_mode():
            model(x)
    else:
        outs = model(x)
        sum(o.float().mean() for o in outs).backward()
        model.zero_grad(set_to_none=True)


@dataclass
class Timing:
    name: str
    mode: str
    seconds: float
    rounds: List[float] = field(default_factory=list)


def time_candidates(cands: List[Candidate], mode: str, batch: int, size: Tuple[int, int],
                    rounds: int = 5, warmup: int = 2) -> List[Timing]:
    """Median seconds per step of each candidate, with interleaved rounds."""
    if mode not in ('inference', 'train'):
        raise ValueError(f"mode must be 'inference' or 'train', got {mode!r}.")
    torch.manual_seed(0)
    x = torch.randn(batch, 3, *size)
    active = [c for c in cands
              if not (c.inference_only and mode == 'train' or c.training_only and mode == 'inference')]
    models, inputs = {}, {}
    for c in active:
        model = c.build()
        model.train(mode == 'train')
        models[c.name] = model
        inputs[c.name] = x.contiguous(memory_format=torch.channels_last) if c.channels_last else x
        for _ in range(warmup):
            _step(model, inputs[c.name], mode)
    samples: Dict[str, List[float]] = {c.name: [] for c in active}
    for _ in range(rounds):
        for c in active:
            start = time.perf_counter()
            _step(models[c.name], inputs[c.name], mode)
            samples[c.name].append(time.perf_counter() - start)
    return [Timing(c.name, mode, statistics.median(samples[c.name]), samples[c.name])
            for c in active]


def peak_train_memory_mb(build: Callable[[], nn.Module], batch: int, size: Tuple[int, int],
                         channels_last: bool = False) -> float:
    """Peak resident memory added by one training step, in MiB (run in a fresh process)."""
    model = build()
    model.train()  # mmdet's ResNet.train() returns None: do not chain
    x = torch.randn(batch, 3, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gc.collect()
    with open('/proc/self/statm') as f:
        base = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    _step(model, x, 'train')
    # VmHWM belongs to this address space; ru_maxrss would carry over the parent's peak when the
    # process was forked from a large one.
    with open('/proc/self/status') as f:
        peak_kib = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
    return peak_kib / 1024 - base


def backbone_gflop(arch: str, batch: int, size: Tuple[int, int]) -> float:
    """Forward GFLOP (2 x multiply-adds) of the backbone for a batch, from our own count."""
    macs = complexity(resolve_arch(arch), input_size=size, num_classes=None)['flops']
    return 2 * macs * batch / 1e9


def summarise(timings: List[Timing], arch: str, batch: int, size: Tuple[int, int],
              sgemm_gflops: Optional[float]) -> List[Dict]:
    """Rows with seconds, ratio to the mmdet (or first) candidate, GFLOP/s and % of sgemm."""
    gflop = backbone_gflop(arch, batch, size)
    rows = []
    for mode in dict.fromkeys(t.mode for t in timings):
        group = [t for t in timings if t.mode == mode]
        base = next((t for t in group if t.name.startswith('mmdet')), group[0])
        for t in group:
            # A training step is forward + backward: about 3x the forward flops. Detector steps
            # have no backbone-only flop count.
            work = None if mode.startswith('detector') else gflop * (3 if mode == 'train' else 1)
            rows.append(dict(mode=mode, name=t.name, seconds=t.seconds,
                             speedup=base.seconds / t.seconds, baseline=base.name,
                             gflops=work / t.seconds if work else None,
                             sgemm_fraction=(work / t.seconds / sgemm_gflops)
                             if work and sgemm_gflops else None))
    return rows


def markdown(rows: List[Dict], header: str) -> str:
    lines = [header, '', '| mode | implementation | median s/step | speed vs mmdet | GFLOP/s | % of sgemm |',
             '|---|---|---|---|---|---|']
    for r in rows:
        frac = f"{100 * r['sgemm_fraction']:.0f}%" if r['sgemm_fraction'] else '-'
        gflops = f"{r['gflops']:.0f}" if r['gflops'] else '-'
        lines.append(f"| {r['mode']} | {r['name']} | {r['seconds']:.3f} | {r['speedup']:.2f}x | "
                     f"{gflops} | {frac} |")
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------
# Detector level: a Mask R-CNN training step and predict step, our config against mmdet's.
# ------------------------------------------------------------------------------------------------
OUR_MASK_RCNN = 'configs/mask_rcnn_regnetx_3.2gf_fpn.py'
MMDET_MASK_RCNN = 'mmdet::regnet/mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py'


def build_detector(config: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a detector from an mmdet config with pretrained init switched off."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    import regnet_backbone  # noqa: F401  (registers RegNetBackbone)
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def time_detectors(builders: Dict[str, Callable[[], nn.Module]], batch: int,
                   size: Tuple[int, int], rounds: int = 3, warmup: int = 1) -> List[Timing]:
    """Median seconds of a training step (loss + backward) and a predict step per detector."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=batch, image_shapes=[(3, *size)] * batch,
                          num_items=[6] * batch, num_classes=80, with_mask=True)
    models = {name: build() for name, build in builders.items()}

    def train_step(model):
        model.train()
        batch_data = model.data_preprocessor(data, True)
        losses = model(**batch_data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def predict_step(model):
        model.eval()
        with torch.no_grad():
            model(**model.data_preprocessor(data, False), mode='predict')

    timings = []
    for mode, step in (('detector train', train_step), ('detector predict', predict_step)):
        for model in models.values():
            for _ in range(warmup):
                torch.manual_seed(0)
                step(model)
        samples: Dict[str, List[float]] = {name: [] for name in models}
        for _ in range(rounds):
            for name, model in models.items():
                torch.manual_seed(0)
                start = time.perf_counter()
                step(model)
                samples[name].append(time.perf_counter() - start)
        timings += [Timing(name, mode, statistics.median(s), s) for name, s in samples.items()]
    return timings


# The goals of the performance issue, checked against a run's rows.
TARGETS = (
    ('inference', 'ours deploy + channels_last', 'speedup', '>=', 1.45,
     'deploy-mode inference vs mmdet eager NCHW'),
    ('inference', 'ours deploy + channels_last', 'sgemm_fraction', '>=', 0.90,
     'deploy-mode inference, fraction of measured sgemm GFLOP/s'),
    ('train', 'ours channels_last', 'speedup', '>=', 1.1,
     'training forward+backward vs mmdet (fastest training variant of ours)'),
    ('memory', 'ours with_cp (NCHW)', 'ratio_to_ours_nchw', '<=', 0.6,
     'with_cp peak training memory vs without'),
    ('detector train', 'ours Mask R-CNN channels_last', 'speedup', '>=', 1.0,
     'Mask R-CNN training step vs mmdet RegNet config'),
)


def targets_markdown(rows: List[Dict], memory: List[Dict]) -> str:
    """A markdown table of each target, the measured value and whether it is met."""
    lookup = {(r['mode'], r['name']): r for r in list(rows) + list(memory)}
    lines = ['| target | goal | measured | met |', '|---|---|---|---|']
    for mode, name, key, op, goal, text in TARGETS:
        row = lookup.get((mode, name))
        if row is None or row.get(key) is None:
            lines.append(f'| {text} | {op} {goal} | not measured in this run | - |')
            continue
        value = row[key]
        met = value >= goal if op == '>=' else value <= goal
        lines.append(f'| {text} | {op} {goal:g} | {value:.2f} | {"yes" if met else "**no**"} |')
    return '\n'.join(lines)
