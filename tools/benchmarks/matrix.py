"""The device matrix (``tools/benchmark.py --modes matrix``, the GPU check's benchmark): ours in
every precision/layout mode against each rival, inference and training step, on CPU or CUDA.

A *mode* is a precision (fp32, AMP fp16, AMP bf16) plus flags: channels_last, deploy
(``switch_to_deploy``, ours only, inference only) and compile (``torch.compile``). Every
implementation runs every mode it can; ours in mode M is compared with each rival in M, or, when
the rival cannot run M (deploy) or was not run in it (compile by default), in M without those
flags (the rival's eager model), and the row says which. A mode a device or a torch build cannot
do is not a crash: the row becomes a recorded skip with the reason.
"""
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from regnet_backbone.benchmark import (BenchmarkError, first_line, matmul_peak_tflops,
                                       peak_step_memory_mb, release, time_interleaved)
from regnet_backbone.design.complexity import complexity
from regnet_backbone.design.presets import resolve_arch

from .modes import TASKS, Mode, StepRunner
from .rivals import RIVALS, implementations_for

MATRIX_ARCHS = ('regnetx_3.2gf', 'regnety_1.6gf')
#: (batch, height, width): classification-size and detection-size inputs.
MATRIX_SHAPES = ((32, 224, 224), (8, 800, 1344))
DEFAULT_MODES = {
    'cuda': ('fp32', 'channels_last', 'amp_fp16', 'amp_bf16', 'amp_bf16+channels_last',
             'amp_bf16+channels_last+deploy', 'amp_bf16+channels_last+compile'),
    'cpu': ('fp32', 'channels_last', 'amp_bf16', 'channels_last+deploy', 'channels_last+compile'),
}
PEAK_DTYPES = (('fp32', torch.float32), ('amp_fp16', torch.float16), ('amp_bf16', torch.bfloat16))


def backbone_gflop(arch: str, batch: int, size: Tuple[int, int]) -> float:
    """Forward GFLOP (2 x multiply-adds) of the backbone for a batch, from our own count."""
    macs = complexity(resolve_arch(arch), input_size=size, num_classes=None)['flops']
    return 2 * macs * batch / 1e9


def matmul_peaks(device: torch.device) -> Dict[str, Dict]:
    """The device's achieved matrix-multiply TFLOP/s per precision, in this run: each entry
    holds ``tflops`` and ``n`` (and ``tf32`` for fp32 on CUDA), or ``skip`` with the reason."""
    result = {}
    cuda = device.type == 'cuda'
    for precision, dtype in PEAK_DTYPES:
        # CPUs without bf16/fp16 units multiply half types hundreds of times slower: keep small.
        n = 8192 if cuda else (1024 if dtype == torch.float32 else 256)
        try:
            result[precision] = dict(tflops=matmul_peak_tflops(device, dtype, n), n=n)
        except Exception as error:
            result[precision] = dict(skip=first_line(error))
            continue
        if cuda and dtype == torch.float32:
            result[precision]['tf32'] = bool(torch.backends.cudnn.allow_tf32)
    release(device)
    return result


@dataclass
class MatrixResult:
    """Rows (one per arch, shape, task, implementation, mode), skips with reasons, peaks."""
    device: str
    rows: List[Dict] = field(default_factory=list)
    skipped: List[Dict] = field(default_factory=list)
    peaks: Dict[str, Dict] = field(default_factory=dict)

    def to_dict(self) -> Dict:
        return dict(device=self.device, rows=self.rows, skipped=self.skipped, peaks=self.peaks)


def parse_shape(text: str) -> Tuple[int, int, int]:
    """``'32x224x224'`` -> (batch, height, width)."""
    try:
        batch, height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise BenchmarkError(f'shape {text!r}: write BATCHxHEIGHTxWIDTH, e.g. 32x224x224.'
                             ) from None
    if min(batch, height, width) < 1:
        raise BenchmarkError(f'shape {text!r}: every size must be >= 1.')
    return batch, height, width


def run_matrix(device: torch.device, archs: Sequence[str] = MATRIX_ARCHS,
               shapes: Sequence[Tuple[int, int, int]] = MATRIX_SHAPES,
               modes: Optional[Sequence[str]] = None, tasks: Sequence[str] = TASKS,
               rivals: Sequence[str] = RIVALS, compile_rivals: bool = False,
               onnxruntime: bool = False, rounds: int = 5, warmup: int = 2,
               min_sample_s: Optional[float] = None, deadline: Optional[float] = None,
               compile_reserve_s: float = 90.0,
               log: Optional[Callable[[str], None]] = None) -> MatrixResult:
    """Time every (arch, shape, task, implementation, mode) on ``device``.

    Eager modes of one (arch, shape, task) are timed together in interleaved rounds; compiled
    models are timed afterwards, in groups of their own, because compiling takes long and can
    fail. ``deadline`` (a ``time.monotonic()`` value) turns groups that would start after it
    (compile groups: less than ``compile_reserve_s`` before it) into recorded skips. Rows hold
    images/s, seconds/step, GFLOP/s, the fraction of this run's matmul peak for the row's
    precision, CUDA peak memory, and ratios to each rival.
    """
    log = log or (lambda message: None)
    parsed = [Mode.parse(m) for m in (modes or DEFAULT_MODES[device.type])]
    for task in tasks:
        if task not in TASKS:
            raise BenchmarkError(f'task must be one of {TASKS}, got {task!r}.')
    if min_sample_s is None:
        min_sample_s = 0.05 if device.type == 'cuda' else 0.0
    result = MatrixResult(device=str(device))
    result.peaks = matmul_peaks(device)

    groups = []
    for arch in archs:
        impls = implementations_for(arch, rivals, onnxruntime=onnxruntime and device.type == 'cpu')
        for impl in impls:
            if impl.skip:
                result.skipped.append(dict(arch=arch, implementation=impl.name, reason=impl.skip))
        impls = [i for i in impls if not i.skip]
        for shape in shapes:
            for task in tasks:
                eager, compiled = [], []
                for impl in impls:
                    for mode in parsed:
                        if not impl.supports(mode, task):
                            continue
                        if mode.compile and impl.name != 'ours' and not compile_rivals:
                            continue
                        (compiled if mode.compile else eager).append((impl, mode))
                groups.append((arch, shape, task, eager))
                if compiled:
                    groups.append((arch, shape, task, compiled))
    # Eager groups first: the compile groups are the ones a deadline should cut, and among them
    # every arch at the first shape before any arch at the next.
    groups.sort(key=lambda g: (any(mode.compile for _, mode in g[3]),
                               list(shapes).index(g[1]) if any(m.compile for _, m in g[3]) else 0))

    for arch, (batch, height, width), task, members in groups:
        where = dict(arch=arch, batch=batch, height=height, width=width, task=task)
        # Compiling takes a minute or so: one that could not finish before the deadline is not
        # started.
        reserve = compile_reserve_s if any(mode.compile for _, mode in members) else 0.0
        if deadline is not None and time.monotonic() + reserve > deadline:
            for impl, mode in members:
                result.skipped.append(dict(where, implementation=impl.name, mode=mode.name,
                                           reason='time budget of this run spent'))
            continue
        began = time.monotonic()
        torch.manual_seed(0)
        images = torch.randn(batch, 3, height, width)
        runners, keys = {}, {}
        for impl, mode in members:
            key = f'{impl.name} [{mode.name}]'
            keys[key] = (impl, mode)
            try:
                runners[key] = StepRunner(impl.build(), mode, task, images, device)
            except Exception as error:
                result.skipped.append(dict(where, implementation=impl.name, mode=mode.name,
                                           reason=first_line(error)))
        skipped: Dict[str, str] = {}
        samples = time_interleaved(runners, device, rounds, warmup, min_sample_s, skipped)
        for key, reason in skipped.items():
            impl, mode = keys[key]
            if mode.compile:  # a failed compile can leave dynamo's caches half-filled
                reset_dynamo()
            result.skipped.append(dict(where, implementation=impl.name, mode=mode.name,
                                       reason=reason))
        gflop = backbone_gflop(arch, batch, (height, width)) * (3 if task == 'train' else 1)
        for key, times in samples.items():
            impl, mode = keys[key]
            seconds = statistics.median(times)
            peak = result.peaks.get(mode.precision, {}).get('tflops')
            try:
                memory = peak_step_memory_mb(runners[key], device)
            except Exception:  # memory is a side measurement: a failure leaves it blank
                memory = None
            result.rows.append(dict(
                where, implementation=impl.name, mode=mode.name, seconds=seconds,
                images_per_s=batch / seconds, rounds=times, gflops=gflop / seconds,
                peak_fraction=gflop / seconds / (peak * 1e3) if peak else None,
                peak_mb=memory))
        runners.clear()
        release(device)
        log(f'{arch} {batch}x{height}x{width} {task}: {len(samples)} timed, '
            f'{len(members) - len(samples)} skipped, {time.monotonic() - began:.1f} s')
    add_ratios(result.rows)
    return result


def reset_dynamo() -> None:
    try:
        from torch import _dynamo
        _dynamo.reset()
    except Exception:  # torch without dynamo: nothing to reset
        pass


def add_ratios(rows: List[Dict]) -> None:
    """Give each row of ours ``vs[rival] = {ratio, rival_mode}`` (ours images/s over theirs)."""
    index = {(r['arch'], r['batch'], r['height'], r['width'], r['task'], r['implementation'],
              r['mode']): r for r in rows}
    for row in rows:
        if row['implementation'] != 'ours':
            continue
        row['vs'] = {}
        mode = Mode.parse(row['mode'])
        place = (row['arch'], row['batch'], row['height'], row['width'], row['task'])
        rivals = sorted({r['implementation'] for r in rows if r['implementation'] != 'ours'})
        for rival in rivals:
            for candidate in (mode, mode.without('compile'), mode.without('deploy', 'compile')):
                theirs = index.get(place + (rival, candidate.name))
                if theirs:
                    row['vs'][rival] = dict(ratio=row['images_per_s'] / theirs['images_per_s'],
                                            rival_mode=candidate.name)
                    break


def matrix_markdown(result: MatrixResult) -> str:
    """Tables per (arch, shape, task), the matmul peaks and the skipped rows with reasons."""
    lines = ['Matrix-multiply peak measured in this run: ' + ', '.join(
        f"{p} {v['tflops']:.3g} TFLOP/s (n={v['n']})" + (' (TF32)' if v.get('tf32') else '')
        if 'tflops' in v else f"{p} not measured ({v['skip']})"
        for p, v in result.peaks.items()) + '.']
    rivals = sorted({r['implementation'] for r in result.rows if r['implementation'] != 'ours'})
    places = list(dict.fromkeys((r['arch'], r['batch'], r['height'], r['width'], r['task'])
                                for r in result.rows))
    for arch, batch, height, width, task in places:
        group = [r for r in result.rows if (r['arch'], r['batch'], r['height'], r['width'],
                                            r['task']) == (arch, batch, height, width, task)]
        lines += ['', f'**{arch}, batch {batch} at {height}x{width}, {task}**'
                  f"{' (forward + backward + SGD step)' if task == 'train' else ''}", '',
                  '| implementation | mode | images/s | ' + ''.join(f'vs {r} | ' for r in rivals) +
                  'peak MiB | % of matmul peak |',
                  '|---|---|---|' + '---|' * len(rivals) + '---|---|']
        for r in group:
            ratios = ''
            for rival in rivals:
                v = r.get('vs', {}).get(rival)
                note = '' if not v or v['rival_mode'] == r['mode'] else f" (vs {v['rival_mode']})"
                ratios += f"{v['ratio']:.2f}x{note} | " if v else '- | '
            memory = f"{r['peak_mb']:.0f}" if r.get('peak_mb') is not None else '-'
            fraction = f"{100 * r['peak_fraction']:.0f}%" if r.get('peak_fraction') else '-'
            lines.append(f"| {r['implementation']} | {r['mode']} | {r['images_per_s']:.1f} | "
                         f'{ratios}{memory} | {fraction} |')
    lines += ['', skipped_markdown(result.skipped)]
    return '\n'.join(lines)


def skipped_markdown(skipped: List[Dict]) -> str:
    if not skipped:
        return 'Skipped: nothing.'
    lines = ['Skipped (what could not run here, and why):', '',
             '| where | implementation | mode | reason |', '|---|---|---|---|']
    for s in skipped:
        where = s.get('arch', s.get('model', ''))
        if 'batch' in s:
            where += f", {s['batch']}x{s['height']}x{s['width']} {s['task']}"
        lines.append(f"| {where} | {s.get('implementation', '-')} | {s.get('mode', 'all')} | "
                     f"{s['reason'].replace('|', '/')} |")
    return '\n'.join(lines)
