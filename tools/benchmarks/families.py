"""Families at matched flops (``tools/benchmark.py --modes families``): RegNetY/RegNetX against
EfficientNet and ResNet-50 as whole classifiers, at each model's own resolution: images/s of
inference and of a training step, counted GFLOPs, activation memory, and the pairs' ratios.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from regnet_backbone.atomic import replace_bytes
from regnet_backbone.benchmark import first_line, peak_step_memory_mb, release, time_interleaved
from regnet_backbone.models import RegNetBackbone

from .matrix import skipped_markdown
from .modes import TASKS, Mode, StepRunner, autocast
from .rivals import TupleOut, import_reason


@dataclass(frozen=True)
class FamilyModel:
    """A classification network of the families comparison, at its own input resolution."""
    label: str
    family: str
    source: str       # 'ours', 'timm' or 'torchvision'
    name: str         # our preset, timm or torchvision model name
    resolution: int


#: The paper's pairs (Radosavovic et al. 2020, Table 4 and Fig. 14), EfficientNets at their own
#: resolutions; RegNetX-4.0GF against ResNet-50 as the paper's ResNet comparison.
FAMILY_MODELS = (
    FamilyModel('RegNetY-400MF', 'RegNetY', 'ours', 'regnety_400mf', 224),
    FamilyModel('EfficientNet-B0', 'EfficientNet', 'timm', 'efficientnet_b0', 224),
    FamilyModel('RegNetY-1.6GF', 'RegNetY', 'ours', 'regnety_1.6gf', 224),
    FamilyModel('EfficientNet-B2', 'EfficientNet', 'timm', 'efficientnet_b2', 260),
    FamilyModel('RegNetX-4.0GF', 'RegNetX', 'ours', 'regnetx_4.0gf', 224),
    FamilyModel('ResNet-50', 'ResNet', 'torchvision', 'resnet50', 224),
)
FAMILY_PAIRS = (('RegNetY-400MF', 'EfficientNet-B0'), ('RegNetY-1.6GF', 'EfficientNet-B2'),
                ('RegNetX-4.0GF', 'ResNet-50'))


class Classifier(nn.Module):
    """Our backbone with pycls's head (global average pool, linear to 1000 classes)."""

    def __init__(self, arch: str):
        super().__init__()
        self.backbone = RegNetBackbone(arch, out_indices=(-1, ), zero_init_residual=False,
                                       norm_eval=False)
        self.backbone.init_weights()
        self.fc = nn.Linear(self.backbone.out_channels[-1], 1000)

    def forward(self, x):
        x = self.backbone(x)[-1].mean((2, 3))
        return (self.fc(x), )

    def switch_to_deploy(self):
        self.backbone.switch_to_deploy()
        return self


def build_family_model(model: FamilyModel) -> nn.Module:
    """The classifier of ``model``, returning a 1-tuple of logits (random weights)."""
    if model.source == 'ours':
        return Classifier(model.name)
    if model.source == 'timm':
        import timm
        return TupleOut(timm.create_model(model.name))
    import torchvision.models as tvm
    return TupleOut(getattr(tvm, model.name)())


def forward_gflop(model: nn.Module, images: torch.Tensor) -> Optional[float]:
    """GFLOP (2 x multiply-adds) of one forward pass, counted by torch's FlopCounterMode."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # torch < 2.1
        return None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(images)
    return counter.get_total_flops() / 1e9


def _storage(t: torch.Tensor):
    try:
        return t.untyped_storage()
    except AttributeError:  # torch < 2.0
        return t.storage()


def activation_memory_mb(model: nn.Module, images: torch.Tensor, mode: Mode = Mode()) -> float:
    """MiB of the tensors autograd keeps from a training forward pass for the backward pass
    (each storage counted once; parameters excluded): the activation memory of training."""
    storages: Dict[Tuple[int, str], int] = {}

    def pack(t):
        s = _storage(t)
        storages[(s.data_ptr(), str(t.device))] = s.nbytes()
        return t

    params = {_storage(p).data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            autocast(images.device, mode):
        outs = model(images)
    del outs
    return sum(n for (ptr, _), n in storages.items() if ptr not in params) / 2**20


def run_families(device: torch.device, batch: int, modes: Sequence[str] = ('fp32', ),
                 resolution: Optional[int] = None, rounds: int = 5, warmup: int = 2,
                 min_sample_s: Optional[float] = None,
                 models: Sequence[FamilyModel] = FAMILY_MODELS,
                 log: Optional[Callable[[str], None]] = None) -> Dict:
    """Inference and training images/s, GFLOPs and activation memory of each family model.

    ``resolution`` overrides every model's own (for quick runs). Returns ``rows`` (one per model,
    mode and task), ``pairs`` (RegNet / rival speed ratios) and ``skipped``.
    """
    log = log or (lambda message: None)
    if min_sample_s is None:
        min_sample_s = 0.05 if device.type == 'cuda' else 0.0
    rows, skipped, info = [], [], {}
    available = []
    for m in models:
        reason = None if m.source == 'ours' else import_reason(m.source)
        if reason:
            skipped.append(dict(model=m.label, reason=reason))
        else:
            available.append(m)
    for m in available:
        res = resolution or m.resolution
        torch.manual_seed(0)
        try:
            model = build_family_model(m).to(device).eval()
            probe = torch.randn(1, 3, res, res, device=device)
            info[m.label] = dict(gflops=forward_gflop(model, probe),
                                 params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                                 resolution=res)
            model.train()
            info[m.label]['activation_mb'] = activation_memory_mb(
                model, torch.randn(batch, 3, res, res, device=device))
        except Exception as error:
            skipped.append(dict(model=m.label, reason=first_line(error)))
        model = None
        release(device)
    available = [m for m in available if m.label in info]
    for mode_text in modes:
        mode = Mode.parse(mode_text)
        for task in TASKS:
            began = time.monotonic()
            runners = {}
            for m in available:
                res = info[m.label]['resolution']
                torch.manual_seed(0)
                try:
                    runners[m.label] = StepRunner(build_family_model(m), mode, task,
                                                  torch.randn(batch, 3, res, res), device)
                except Exception as error:
                    skipped.append(dict(model=m.label, mode=mode.name, reason=first_line(error)))
            failed: Dict[str, str] = {}
            samples = time_interleaved(runners, device, rounds, warmup, min_sample_s, failed)
            skipped += [dict(model=k, mode=mode.name, task=task, reason=v)
                        for k, v in failed.items()]
            for label, times in samples.items():
                m = next(x for x in available if x.label == label)
                seconds = statistics.median(times)
                try:
                    memory = peak_step_memory_mb(runners[label], device)
                except Exception:  # a side measurement: a failure leaves it blank
                    memory = None
                rows.append(dict(model=label, family=m.family, source=m.source, name=m.name,
                                 mode=mode.name, task=task, batch=batch, seconds=seconds,
                                 images_per_s=batch / seconds, rounds=times, peak_mb=memory,
                                 **info[label]))
            runners.clear()
            release(device)
            log(f'families {mode.name} {task}: {len(samples)} timed, '
                f'{time.monotonic() - began:.1f} s')
    pairs = []
    lookup = {(r['model'], r['mode'], r['task']): r for r in rows}
    labels = {m.label for m in models}
    for regnet, rival in (p for p in FAMILY_PAIRS if set(p) <= labels):
        for mode_text in modes:
            name = Mode.parse(mode_text).name
            entry = dict(regnet=regnet, rival=rival, mode=name)
            for task in TASKS:
                a, b = lookup.get((regnet, name, task)), lookup.get((rival, name, task))
                entry[f'{task}_ratio'] = a['images_per_s'] / b['images_per_s'] if a and b else None
            a, b = info.get(regnet), info.get(rival)
            entry['gflops_ratio'] = a['gflops'] / b['gflops'] if a and b and b['gflops'] else None
            entry['activation_ratio'] = (a['activation_mb'] / b['activation_mb']
                                         if a and b and 'activation_mb' in b else None)
            pairs.append(entry)
    return dict(device=str(device), batch=batch, rows=rows, pairs=pairs, skipped=skipped)


def families_markdown(result: Dict) -> str:
    """The per-model table, the pair ratios and the skips."""
    lines = ['| model | mode | resolution | GFLOPs/image | params (M) | inference images/s | '
             'training images/s | activation MiB (batch) | peak MiB (train step) |',
             '|---|---|---|---|---|---|---|---|---|']
    models = list(dict.fromkeys((r['model'], r['mode']) for r in result['rows']))
    lookup = {(r['model'], r['mode'], r['task']): r for r in result['rows']}
    for model, mode in models:
        inf, train = lookup.get((model, mode, 'inference')), lookup.get((model, mode, 'train'))
        any_row = inf or train
        gflops = f"{any_row['gflops']:.2f}" if any_row.get('gflops') else '-'
        peak = f"{train['peak_mb']:.0f}" if train and train.get('peak_mb') is not None else '-'
        lines.append(f"| {model} | {mode} | {any_row['resolution']} | {gflops} | "
                     f"{any_row['params_m']:.1f} | {inf['images_per_s']:.1f} | "
                     f"{train['images_per_s']:.1f} | {any_row['activation_mb']:.0f} | {peak} |"
                     if inf and train else f'| {model} | {mode} | incomplete | | | | | | |')
    lines += ['', '| RegNet vs rival | mode | flops ratio | inference speed ratio | '
              'training speed ratio | activation memory ratio |', '|---|---|---|---|---|---|']

    def fmt(v):
        return f'{v:.2f}x' if v is not None else '-'
    for p in result['pairs']:
        lines.append(f"| {p['regnet']} vs {p['rival']} | {p['mode']} | {fmt(p['gflops_ratio'])} | "
                     f"{fmt(p['inference_ratio'])} | {fmt(p['train_ratio'])} | "
                     f"{fmt(p['activation_ratio'])} |")
    lines += ['', skipped_markdown(result['skipped'])]
    return '\n'.join(lines)


def log_log_axes(ax) -> None:
    """Log scales on both axes of a matplotlib ``ax``, ticked at 1, 2, 5 x 10^k, plain numbers."""
    import matplotlib.ticker
    ax.set_xscale('log')
    ax.set_yscale('log')
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_families(result: Dict, path: str, title: str) -> None:
    """One picture: images/s against GFLOPs per image, inference and training, log-log."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours = {'RegNetY': 'tab:blue', 'RegNetX': 'tab:cyan', 'EfficientNet': 'tab:red',
               'ResNet': 'tab:green'}
    modes = list(dict.fromkeys(r['mode'] for r in result['rows']))
    fig = Figure(figsize=(10, 4 * max(len(modes), 1)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(modes) or 1, 2, squeeze=False)
    for row_axes, mode in zip(axes, modes):
        for ax, task in zip(row_axes, TASKS):
            for r in (r for r in result['rows'] if r['mode'] == mode and r['task'] == task):
                ax.scatter(r['gflops'], r['images_per_s'], color=colours.get(r['family'], 'k'),
                           s=40, label=r['family'])
                # RegNet labels above their point, rivals' below: matched pairs sit close.
                below = not r['family'].startswith('RegNet')
                ax.annotate(r['model'], (r['gflops'], r['images_per_s']), fontsize=7,
                            xytext=(4, -10 if below else 4), textcoords='offset points')
            log_log_axes(ax)
            ax.set_xlabel('GFLOPs per image (2 x multiply-adds)')
            ax.set_ylabel(f'{task} images/s')
            ax.set_title(f'{task}, {mode} (higher is faster)', fontsize=9)
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=7)
            ax.grid(True, which='both', alpha=0.3)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110)
    replace_bytes(path, buffer.getvalue())
