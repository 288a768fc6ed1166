"""The CPU fp32 report (``tools/benchmark.py --modes inference train memory detector``): our
backbone's variants against mmdet's eager NCHW ``RegNet``, torchvision and timm, as ratios to mmdet.

Every candidate runs in one process on the same input, warmed up, in interleaved rounds (the core
:func:`regnet_backbone.benchmark.time_interleaved`); the time is the median over rounds. A
training row is forward + backward (no optimizer step). Memory is the peak resident set of one
training step, each candidate in a fresh process. The goals these rows are read against come
from a docs file (``docs/benchmark_goals.json``), not from code.
"""
import json
import os
import statistics
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from regnet_backbone.benchmark import peak_step_memory_mb, time_interleaved

from .matrix import backbone_gflop
from .modes import TASKS, Mode, StepRunner
from .rivals import Implementation, implementation

CPU = torch.device('cpu')


@dataclass(frozen=True)
class Candidate:
    """One row label of the report: an implementation of the registry, in a mode, for some
    tasks, built with some options (``with_cp``)."""
    name: str
    implementation: str
    mode: str = 'fp32'
    tasks: Tuple[str, ...] = TASKS
    options: Tuple[Tuple[str, object], ...] = ()


CANDIDATES = (
    Candidate('mmdet RegNet (NCHW)', 'mmdet'),
    Candidate('ours (NCHW)', 'ours'),
    Candidate('ours channels_last', 'ours', 'channels_last'),
    Candidate('ours deploy + channels_last', 'ours', 'channels_last+deploy', ('inference', )),
    Candidate('ours with_cp (NCHW)', 'ours', tasks=('train', ), options=(('with_cp', True), )),
    Candidate('torchvision (NCHW)', 'torchvision'),
    Candidate('timm (NCHW)', 'timm'),
)
ONNX = Candidate('onnxruntime CPU (ours deploy)', 'onnxruntime', tasks=('inference', ))
RIVAL_NAMES = ('mmdet', 'torchvision', 'timm')


@dataclass
class Runnable:
    """A candidate with its registry entry: ``build()`` gives the model, ``mode`` how it runs."""
    candidate: Candidate
    impl: Implementation

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def mode(self) -> Mode:
        return Mode.parse(self.candidate.mode)

    def build(self) -> nn.Module:
        return self.impl.build(**dict(self.candidate.options))


def candidates_for(arch: str, rivals: bool = True, onnx: bool = False,
                   names: Optional[Sequence[str]] = None) -> Tuple[List[Runnable], List[Dict]]:
    """The candidates that can run here for ``arch`` (only those called ``names``, when given),
    and the skipped ones with the reason (a rival not installed or shipping no such arch)."""
    wanted = [c for c in CANDIDATES if rivals or c.implementation not in RIVAL_NAMES]
    wanted += [ONNX] if onnx else []
    # Only the registry entries asked for: checking a rival imports it (mmdet takes seconds).
    wanted = [c for c in wanted if names is None or c.name in names]
    impls = {name: implementation(name, arch) for name in {c.implementation for c in wanted}}
    runnable = [Runnable(c, impls[c.implementation]) for c in wanted
                if not impls[c.implementation].skip]
    skipped = [dict(name=c.name, reason=impls[c.implementation].skip) for c in wanted
               if impls[c.implementation].skip]
    return runnable, skipped


@dataclass
class Timing:
    name: str
    mode: str
    seconds: float
    rounds: List[float]


def time_candidates(cands: Sequence[Runnable], task: str, batch: int, size: Tuple[int, int],
                    rounds: int = 5, warmup: int = 2) -> List[Timing]:
    """Median seconds per step of each candidate that runs ``task``, in interleaved rounds."""
    torch.manual_seed(0)
    images = torch.randn(batch, 3, *size)
    runners = {c.name: StepRunner(c.build(), c.mode, task, images, CPU, sgd=False)
               for c in cands if task in c.candidate.tasks}
    samples = time_interleaved(runners, CPU, rounds, warmup)
    return [Timing(name, task, statistics.median(s), s) for name, s in samples.items()]


def training_step_memory_mb(cand: Runnable, batch: int, size: Tuple[int, int]) -> float:
    """Peak resident MiB added by one training step of ``cand`` (call in a fresh process)."""
    runner = StepRunner(cand.build(), cand.mode, 'train', torch.randn(batch, 3, *size), CPU,
                        sgd=False)
    return peak_step_memory_mb(runner, CPU, cpu_rss=True)


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
    lines = [header, '', '| mode | implementation | median s/step | speed vs mmdet | GFLOP/s | '
             '% of sgemm |', '|---|---|---|---|---|---|']
    for r in rows:
        frac = f"{100 * r['sgemm_fraction']:.0f}%" if r['sgemm_fraction'] else '-'
        gflops = f"{r['gflops']:.0f}" if r['gflops'] else '-'
        lines.append(f"| {r['mode']} | {r['name']} | {r['seconds']:.3f} | {r['speedup']:.2f}x | "
                     f"{gflops} | {frac} |")
    return '\n'.join(lines)


def load_goals(path: str) -> List[Dict]:
    """The goals of a docs file: a JSON list of {mode, name, key, op ('>=' or '<='), goal, text};
    none when the file is absent."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def goals_markdown(goals: List[Dict], rows: List[Dict], memory: List[Dict]) -> str:
    """A markdown table of each goal, the measured value and whether it is met."""
    lookup = {(r['mode'], r['name']): r for r in list(rows) + list(memory)}
    lines = ['| target | goal | measured | met |', '|---|---|---|---|']
    for g in goals:
        row = lookup.get((g['mode'], g['name']))
        if row is None or row.get(g['key']) is None:
            lines.append(f"| {g['text']} | {g['op']} {g['goal']} | not measured in this run | - |")
            continue
        value = row[g['key']]
        met = value >= g['goal'] if g['op'] == '>=' else value <= g['goal']
        lines.append(f"| {g['text']} | {g['op']} {g['goal']:g} | {value:.2f} | "
                     f"{'yes' if met else '**no**'} |")
    return '\n'.join(lines)


# --- detector level: a Mask R-CNN training step and predict step, our config against mmdet's ---
OUR_MASK_RCNN = 'configs/mask_rcnn_regnetx_3.2gf_fpn.py'
MMDET_MASK_RCNN = 'mmdet::regnet/mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py'


def build_detector(config: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a detector from an mmdet config with pretrained init switched off."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.hub import get_config
    register_all_modules()
    import regnet_backbone  # noqa: F401  (registers RegNetBackbone)
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def detector_builders(root: str) -> Dict[str, Callable[[], nn.Module]]:
    """mmdet's RegNetX-3.2GF Mask R-CNN config and ours, NCHW and channels_last."""
    ours = os.path.join(root, OUR_MASK_RCNN)
    return {
        'mmdet RegNet Mask R-CNN': lambda: build_detector(MMDET_MASK_RCNN),
        'ours Mask R-CNN': lambda: build_detector(ours),
        'ours Mask R-CNN channels_last': lambda: build_detector(
            ours, {'model.backbone.channels_last': True}),
    }


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
        losses = model(**model.data_preprocessor(data, True), mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def predict_step(model):
        model.eval()
        with torch.no_grad():
            model(**model.data_preprocessor(data, False), mode='predict')

    timings = []
    for mode, step in (('detector train', train_step), ('detector predict', predict_step)):
        # Seeded before each step: every detector samples the same proposals in every round.
        runners = {name: (lambda m=model, s=step: (torch.manual_seed(0), s(m)))
                   for name, model in models.items()}
        samples = time_interleaved(runners, CPU, rounds, warmup)
        timings += [Timing(name, mode, statistics.median(s), s) for name, s in samples.items()]
    return timings


def plot_speedups(rows: List[Dict], path: str, header: str) -> None:
    """A bar chart per mode of each row's speed relative to mmdet."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    modes = list(dict.fromkeys(r['mode'] for r in rows))
    fig = Figure(figsize=(6 * len(modes), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(modes), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        group = [r for r in rows if r['mode'] == mode]
        ax.barh([r['name'] for r in group], [r['speedup'] for r in group], color='tab:blue')
        ax.axvline(1.0, color='k', lw=0.8)
        ax.set_title(f'{mode}: speed vs mmdet RegNet (higher is better)')
        ax.invert_yaxis()
    fig.suptitle(header, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
