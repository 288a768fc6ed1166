"""``tools/benchmark.py --modes scaling``: the claim of "Fast and Accurate Model Scaling" (Dollár,
Singh and Girshick, CVPR 2021), measured on this machine.

A base network (RegNetY-400MF by default) is scaled by s = 2, 4, 8, 16 in flops with each
strategy (``dWr``, ``d``, ``w``, ``r``, ``dwr``; :mod:`regnet_backbone.design.scaling`). For every
scaled classifier (backbone + pycls's 1000-class head, at its scaled input size) this records
the counted flops, params and activations, the activation memory a training forward pass keeps
for backward, and the median inference and training-step times. The networks of one s are
timed together with the base in interleaved rounds (the timing core,
:mod:`regnet_backbone.benchmark`), so a drift of the machine hits them alike, and each time is
also reported relative to the base's in the same rounds.

The summary is a log-log slope per strategy: acts ~ flops**k and time ~ flops**k (time relative
to the base), fitted over s = 1 (the base) and the scaled networks, against the counted flops
(rounding moves them off s).
The paper's prediction for acts is k = e_d + e_w + 2 e_r: 1 for ``d`` and ``r``, 0.5 for ``w``,
5/6 for ``dwr`` and 0.6 for ``dWr`` ("close to sqrt(s)").

This is a benchmark, not a test: it asserts nothing.
"""
import io
import math
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from benchmarks.families import Classifier, activation_memory_mb, log_log_axes
from benchmarks.modes import TASKS, Mode, StepRunner
from regnet_backbone.atomic import replace_bytes
from regnet_backbone.benchmark import first_line, release, time_interleaved
from regnet_backbone.design import scaling

BASE_ARCH = 'regnety_400mf'
FACTORS = (2.0, 4.0, 8.0, 16.0)
STRATEGIES = ('dWr', 'd', 'w', 'r', 'dwr')
COLOURS = {'dWr': 'tab:blue', 'd': 'tab:orange', 'w': 'tab:green', 'r': 'tab:red',
           'dwr': 'tab:purple'}


def predicted_acts_exponent(strategy: str) -> float:
    """e_d + e_w + 2 e_r: how activations grow with s if nothing were rounded."""
    e = scaling.Strategy.parse(strategy).exponents
    return e['d'] + e['w'] + 2 * e['r']


def _slope(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """Least-squares slope of log(y) on log(x); None with fewer than two distinct x."""
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y]
    if len({p[0] for p in points}) < 2:
        return None
    return statistics.linear_regression([p[0] for p in points], [p[1] for p in points]).slope


def _networks(arch: str, factors: Sequence[float], strategies: Sequence[str],
              base_size: int) -> List[Dict]:
    """The base (s = 1, shared by every strategy) and each scaled network, as dicts."""
    nets = []
    for s in (1.0, ) + tuple(factors):
        for strategy in (strategies[:1] if s == 1 else strategies):
            scaled = scaling.scale_arch(arch, s, strategy, (base_size, base_size))
            nets.append(dict(strategy='base' if s == 1 else strategy, s=s, arch=scaled.arch,
                             factors=scaled.factors, input_size=list(scaled.scaled_input_size),
                             **scaled.complexity))
    return nets


def run_scaling(device: torch.device, arch: str = BASE_ARCH,
                factors: Sequence[float] = FACTORS, strategies: Sequence[str] = STRATEGIES,
                batch: int = 1, base_size: int = 224, rounds: int = 3, warmup: int = 1,
                min_sample_s: Optional[float] = None,
                log: Optional[Callable[[str], None]] = None) -> Dict:
    """Scale ``arch`` by each factor with each strategy; count, measure and time every network.

    ``min_sample_s``: each timed sample repeats the step until it lasts this long (default
    0.05 s on CUDA, 0.25 s on the CPU, where a small network's step is tens of ms).

    Returns:
        ``rows`` (one per network: strategy, s, arch, input_size, flops, params, acts,
        activation_mb, inference_s and train_s per step of ``batch`` images, and
        inference_vs_base / train_vs_base: that time over the base's in the same rounds),
        ``slopes`` (one per strategy: acts, activation_mb, inference_vs_base and train_vs_base
        against flops) and ``skipped`` (a network that failed to run, with the reason).
    """
    log = log or (lambda message: None)
    for strategy in strategies:
        scaling.Strategy.parse(strategy)  # a typo fails before anything runs
    if min_sample_s is None:  # short CPU steps repeat too: one step of the base is ~30 ms
        min_sample_s = 0.05 if device.type == 'cuda' else 0.25
    nets = _networks(arch, factors, strategies, base_size)
    skipped = []
    base_times: Dict[str, List[float]] = {task: [] for task in TASKS}
    for s in dict.fromkeys(n['s'] for n in nets):
        group = [n for n in nets if n['s'] == s]
        began = time.monotonic()
        for n in group:
            torch.manual_seed(0)
            try:
                model = Classifier(n['arch']).to(device).train()
                n['activation_mb'] = activation_memory_mb(
                    model, torch.randn(batch, 3, *n['input_size'], device=device))
            except Exception as error:  # e.g. out of memory: recorded, the others still run
                n['activation_mb'] = None
                skipped.append(dict(strategy=n['strategy'], s=s, task='activation memory',
                                    reason=first_line(error)))
            model = None
            release(device)
        if s == 1:
            for n in group:
                n.update(inference_vs_base=1.0, train_vs_base=1.0)
        # The base runs in every group too: time / base time within the same rounds is what the
        # slopes use, so a machine that slows down between groups does not bend them.
        timed = group if s == 1 else [nets[0]] + group
        for task in TASKS:
            runners = {}
            for n in timed:
                torch.manual_seed(0)
                runners[n['strategy']] = StepRunner(
                    Classifier(n['arch']), Mode(), task,
                    torch.randn(batch, 3, *n['input_size']), device)
            failed: Dict[str, str] = {}
            samples = time_interleaved(runners, device, rounds, warmup, min_sample_s, failed)
            medians = {k: statistics.median(v) for k, v in samples.items()}
            if 'base' in medians:
                base_times[task].append(medians['base'])
            for n in group:
                if n['strategy'] in medians:
                    n[f'{task}_s'] = medians[n['strategy']]
                    if 'base' in medians:
                        n[f'{task}_vs_base'] = medians[n['strategy']] / medians['base']
            skipped += [dict(strategy=k, s=s, task=task, reason=v) for k, v in failed.items()]
            runners.clear()
            release(device)
        log(f'scaling s={s:g}: {len(group)} networks, {time.monotonic() - began:.1f} s')
    base = nets[0]
    for task, times in base_times.items():
        if times:  # the base ran in every group: its time is the median over them
            base[f'{task}_s'] = statistics.median(times)
    slopes = []
    for strategy in strategies:
        series = [base] + [n for n in nets if n['strategy'] == strategy]
        flops = [n['flops'] / base['flops'] for n in series]
        entry = dict(strategy=strategy, pycls=scaling.Strategy.parse(strategy).name,
                     predicted_acts=predicted_acts_exponent(strategy))
        for key in ('acts', 'activation_mb', 'inference_vs_base', 'train_vs_base'):
            ok = [(f, n[key]) for f, n in zip(flops, series) if n.get(key)]
            entry[key] = _slope([f for f, _ in ok], [v for _, v in ok])
        entry['acts_vs_s'] = _slope([n['s'] for n in series], [n['acts'] for n in series])
        slopes.append(entry)
    return dict(device=str(device), arch=arch, batch=batch, base_size=base_size, rounds=rounds,
                rows=nets, slopes=slopes, skipped=skipped)


def _fmt(value, spec: str) -> str:
    return format(value, spec) if value is not None else '-'


def scaling_markdown(result: Dict) -> str:
    """The slopes table, then one row per network."""
    lines = [f"Base {result['arch']} at {result['base_size']}x{result['base_size']}, scaled by "
             f"s = {', '.join(f'{s:g}' for s in dict.fromkeys(r['s'] for r in result['rows']))}; "
             f"batch {result['batch']}, median of {result['rounds']} interleaved rounds (the "
             'networks of one s and the base together). Slopes are log-log fits against the '
             'counted flops (x = flops / base flops); the time slopes use time / base time '
             'measured in the same rounds.', '',
             '| strategy | pycls | acts slope (counted) | predicted | activation memory slope '
             '| inference time slope | training time slope |', '|---|---|---|---|---|---|---|']
    for e in result['slopes']:
        lines.append(f"| {e['strategy']} | {e['pycls']} | {_fmt(e['acts'], '.2f')} | "
                     f"{e['predicted_acts']:.2f} | {_fmt(e['activation_mb'], '.2f')} | "
                     f"{_fmt(e['inference_vs_base'], '.2f')} | {_fmt(e['train_vs_base'], '.2f')} |")
    lines += ['', '| strategy | s | input | depths | widths | group widths | GF | params (M) | '
              'acts (M) | activation MiB | inference ms (x base) | training ms (x base) |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in result['rows']:
        ms = {}
        for task in TASKS:
            t, ratio = r.get(f'{task}_s'), r.get(f'{task}_vs_base')
            ms[task] = '-' if t is None else f'{t * 1e3:.0f} ({_fmt(ratio, ".2f")}x)'
        lines.append(
            f"| {r['strategy']} | {r['s']:g} | {r['input_size'][0]}x{r['input_size'][1]} | "
            f"{r['arch']['depths']} | {r['arch']['widths']} | {r['arch']['group_widths']} | "
            f"{r['flops'] / 1e9:.2f} | {r['params'] / 1e6:.1f} | {r['acts'] / 1e6:.1f} | "
            f"{_fmt(r['activation_mb'], '.0f')} | {ms['inference']} | {ms['train']} |")
    if result['skipped']:
        lines += ['', '| skipped | s | task | reason |', '|---|---|---|---|']
        lines += [f"| {k['strategy']} | {k['s']:g} | {k['task']} | {k['reason']} |"
                  for k in result['skipped']]
    return '\n'.join(lines)


def plot_scaling(result: Dict, path: str, title: str) -> None:
    """One picture, three log-log panels against flops: activations, and inference and
    training-step time relative to the base; one line per strategy, all from the base."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    rows = result['rows']
    base = rows[0]
    panels = (('acts', 'activations (M, counted)', 1e-6),
              ('inference_vs_base', 'inference time / base (same rounds)', 1.0),
              ('train_vs_base', 'training-step time / base (same rounds)', 1.0))
    fig = Figure(figsize=(15, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels))
    slopes = {e['strategy']: e for e in result['slopes']}
    for ax, (key, label, unit) in zip(axes, panels):
        for e in result['slopes']:
            series = [base] + [r for r in rows if r['strategy'] == e['strategy']]
            series = [r for r in series if r.get(key)]
            k = slopes[e['strategy']][key]
            ax.plot([r['flops'] / 1e9 for r in series], [r[key] * unit for r in series],
                    marker='o', color=COLOURS.get(e['strategy']),
                    label=f"{e['strategy']} (slope {_fmt(k, '.2f')})")
        log_log_axes(ax)
        ax.set_xlabel('GF (multiply-adds, 1000-class head, scaled input)')
        ax.set_ylabel(label)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110)
    replace_bytes(path, buffer.getvalue())
