"""The timing core shared by ``tools/benchmark.py``, ``tools/gpu_check.py`` and the tests.

torch only, as ``mmdet/utils/benchmark.py``; what is timed (the rivals, modes, families,
detectors) and the reports live under ``tools/benchmarks/``. The method:

* :func:`time_interleaved`: warm every step up, then interleave rounds (A B C A B C ...), so a
  drift of the machine hits every step alike; report per-round samples (take the median).
* :func:`time_calls`: CUDA events on a GPU (the time the stream took), ``perf_counter`` on a CPU.
* :func:`peak_step_memory_mb`: CUDA ``max_memory_allocated`` of one step, or on a CPU the
  process's peak resident set (meaningful in a fresh process only).
* :func:`matmul_peak_tflops`: the achieved matrix-multiply speed, the "peak" a step is put against.
"""
import gc
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .errors import RegNetError


class BenchmarkError(RegNetError):
    """A benchmark cannot run as asked (unknown mode, device not present, bad shape)."""


def first_line(error: BaseException) -> str:
    """``'TypeName: first line of the message'`` (at most 300 characters of it), for skip rows."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else ''
    return f'{type(error).__name__}: {line[:300]}'


def resolve_device(name: str) -> torch.device:
    """``'cpu'`` or ``'cuda'`` (``'cuda:N'``); raises BenchmarkError when CUDA is absent."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchmarkError(f'device {name!r}: use cpu or cuda.') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda: torch sees no CUDA device here '
                             f'(torch {torch.__version__}, built for CUDA {torch.version.cuda}).')
    if device.type not in ('cpu', 'cuda'):
        raise BenchmarkError(f'device {name!r}: use cpu or cuda.')
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    """Free what the last models left behind: Python garbage and CUDA's cached blocks."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def time_calls(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Seconds per call over ``iters`` back-to-back calls: CUDA events on a GPU (the time the
    GPU stream took between the two events), ``perf_counter`` on the CPU."""
    if device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / iters
    begin = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - begin) / iters


def time_interleaved(runners: Dict[str, Callable[[], object]], device: torch.device,
                     rounds: int, warmup: int, min_sample_s: float = 0.0,
                     skipped: Optional[Dict[str, str]] = None) -> Dict[str, List[float]]:
    """Seconds per step of each runner: ``warmup`` steps each (at least one), then ``rounds``
    interleaved rounds. With ``min_sample_s`` each sample repeats the step until it lasts about
    that long (at most 50 times), so short GPU steps are not dominated by launch jitter. A runner
    that raises is removed from ``runners`` and its reason put in ``skipped``.

    Returns:
        ``{key: [seconds per step, one per round]}`` for the runners that ran.
    """
    skipped = {} if skipped is None else skipped
    iters: Dict[str, int] = {}
    for key, fn in list(runners.items()):
        try:
            for _ in range(max(warmup, 1)):
                fn()
            synchronize(device)
            once = time_calls(fn, 1, device) if min_sample_s else 0.0
        except Exception as error:  # one failing step (out of memory, a compile) skips one row
            skipped[key] = first_line(error)
            del runners[key]
            release(device)
            continue
        iters[key] = max(1, min(50, int(min_sample_s / max(once, 1e-6)) + 1)) if min_sample_s else 1
    samples: Dict[str, List[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, fn in runners.items():
            samples[key].append(time_calls(fn, iters[key], device))
    return samples


def _resident_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (``/proc/self/status``, Linux)."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ':')) / 1024


def peak_step_memory_mb(fn: Callable[[], object], device: torch.device,
                        cpu_rss: bool = False) -> Optional[float]:
    """MiB that one call of ``fn`` adds at its peak.

    CUDA: ``torch.cuda.max_memory_allocated`` during the call above what was allocated before.
    CPU with ``cpu_rss``: the peak resident set (``VmHWM``, this address space's own; not
    ``ru_maxrss``, which a forked child inherits) minus the resident set before the call: this is
    the step's peak only in a fresh process, whose high-water mark the step sets. Otherwise None.
    """
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if not cpu_rss:
        return None
    gc.collect()
    with open('/proc/self/statm') as f:  # resident pages now
        base = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    fn()
    return _resident_mib('VmHWM') - base


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048,
                       repeats: int = 5) -> float:
    """Achieved n x n matrix-multiply TFLOP/s (2 n^3 flops a product; median of ``repeats``).

    On CUDA, float32 multiplies with the TF32 setting convolutions use
    (``torch.backends.cudnn.allow_tf32``), so an fp32 conv is put against the math it gets.
    Raises what torch raises when the device cannot multiply in ``dtype``.
    """
    cuda = device.type == 'cuda'
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(2):
            a @ b
        synchronize(device)
        times = [time_calls(lambda: a @ b, 1, device) for _ in range(repeats)]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return 2 * n**3 / statistics.median(times) / 1e12


def relative_error(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor]) -> float:
    """Norm-wise ``||actual - expected|| / ||expected||`` over all tensors of two lists (each
    flattened and joined), in float64 on the CPU; tensors or numpy arrays."""
    def joined(tensors):
        return torch.cat([torch.as_tensor(t).detach().double().cpu().flatten() for t in tensors])
    a, b = joined(actual), joined(expected)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))
