"""Benchmark our RegNet backbone against mmdet's RegNet, torchvision and timm, side by side.

    python tools/benchmark.py --arch regnetx_3.2gf --batch 2 --size 512 512
    python tools/benchmark.py --modes inference train memory --json out.json
    python tools/benchmark.py --markdown docs/benchmarks.md --plot docs/benchmarks.png
    python tools/benchmark.py --device cuda --json gpu.json --markdown gpu.md
    python tools/benchmark.py --device cpu --modes matrix --archs regnety_400mf --shapes 2x128x128
    python tools/benchmark.py --modes families --plot docs/families.png
    python tools/benchmark.py --modes scaling --markdown docs/scaling.md --plot docs/scaling.png

Modes inference/train/memory/detector are the CPU fp32 report (ratios to mmdet). ``matrix`` runs
on --device cpu or cuda: ours in every precision/layout mode (fp32, AMP fp16/bf16, channels_last,
deploy, torch.compile) against torchvision, timm and mmdet (where mmcv.ops imports), inference and
training step, with images/s, ratios, CUDA peak memory and the fraction of this run's matmul peak.
``families`` compares RegNetY/X with EfficientNet and ResNet-50 at matched flops. ``scaling``
scales RegNetY-400MF by 2-16x in flops with each strategy of "Fast and Accurate Model Scaling" and
fits how activations and time grow (tools/benchmark_scaling.py).

This is a benchmark, not a test: it asserts nothing. The method (one process, interleaved rounds,
warm-up, medians; memory in a fresh process each; CUDA events on a GPU) is the timing core,
regnet_backbone/benchmark.py; what is timed and the reports are tools/benchmarks/. The CPU
report's goals table reads docs/benchmark_goals.json (--goals). What a device cannot run is
reported as skipped, with the reason.
"""
import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from regnet_backbone.atomic import replace_bytes  # noqa: E402
from regnet_backbone.benchmark import (BenchmarkError, matmul_peak_tflops,  # noqa: E402
                                       resolve_device)
from regnet_backbone.runtime import cli  # noqa: E402

sys.path.append(os.path.join(ROOT, 'tools'))  # last: tools/ never shadows another module
import benchmark_scaling  # noqa: E402  (tools/benchmark_scaling.py)
from benchmarks import cpu_report, families, matrix  # noqa: E402  (tools/benchmarks/)
from benchmarks.modes import TASKS, Mode  # noqa: E402
from benchmarks.rivals import RIVALS  # noqa: E402

GOALS = os.path.join(ROOT, 'docs', 'benchmark_goals.json')


def _memory_child(args) -> None:
    cands, _ = cpu_report.candidates_for(args.arch, names=[args.memory_child])
    cand = cands[0]
    print(json.dumps(cpu_report.training_step_memory_mb(cand, args.batch, tuple(args.size))))


def _memory_rows(args):
    """Peak memory of a training step per candidate, each in a fresh process."""
    cands, _ = cpu_report.candidates_for(args.arch, rivals=not args.no_rivals)
    names = [c.name for c in cands if 'train' in c.candidate.tasks]
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, '--arch', args.arch, '--batch', str(args.batch), '--size',
               *map(str, args.size), '--threads', str(args.threads), '--memory-child', name]
        # Large blocks through mmap: freed tensors go back to the OS at once, so the peak RSS
        # follows live memory instead of glibc's heap high-water mark.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode:
            raise RuntimeError(f'memory run of {name!r} failed: {out.stderr.strip()[-500:]}')
        rows.append(dict(mode='memory', name=name, peak_mb=json.loads(out.stdout.splitlines()[-1])))
    base = next(r for r in rows if r['name'] == 'ours (NCHW)')['peak_mb']
    for r in rows:
        r['ratio_to_ours_nchw'] = r['peak_mb'] / base
    return rows


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one ``error:`` line on stderr."""

    def error(self, message):
        self.exit(2, f'error: {message} (see --help)\n')


LEGACY_MODES = ('inference', 'train', 'memory', 'detector')


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='cpu (default) or cuda')
    parser.add_argument('--arch', default='regnetx_3.2gf')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', nargs=2, type=int, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--modes', nargs='+', default=None,
                        choices=list(LEGACY_MODES) + ['matrix', 'families', 'scaling'],
                        help='default: inference train memory on the CPU, matrix on cuda. '
                        'detector: Mask R-CNN train/predict steps, our config vs mmdet\'s '
                        '(RegNetX-3.2GF configs; --batch/--size apply)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--no-rivals', action='store_true', help='time our variants only')
    parser.add_argument('--onnx', action='store_true',
                        help='add an onnxruntime CPU row (our deploy-mode backbone exported)')
    group = parser.add_argument_group('matrix')
    group.add_argument('--archs', nargs='+', default=list(matrix.MATRIX_ARCHS))
    group.add_argument('--shapes', nargs='+', default=None, metavar='BxHxW',
                       help='default: 32x224x224 8x800x1344')
    group.add_argument('--matrix-modes', nargs='+', default=None, metavar='MODE',
                       help="e.g. fp32 amp_bf16+channels_last amp_bf16+channels_last+compile "
                       f"(default on cuda: {' '.join(matrix.DEFAULT_MODES['cuda'])}; on the CPU: "
                       f"{' '.join(matrix.DEFAULT_MODES['cpu'])})")
    group.add_argument('--tasks', nargs='+', default=list(TASKS), choices=TASKS)
    group.add_argument('--rivals', nargs='*', default=list(RIVALS), choices=RIVALS)
    group.add_argument('--compile-rivals', action='store_true',
                       help='also torch.compile the rivals (default: ours only, to save time)')
    group.add_argument('--min-sample-s', type=float, default=None,
                       help='repeat a step within one timed sample until it lasts this long '
                       '(default 0.05 s on cuda, one step on the CPU)')
    group.add_argument('--time-budget', type=float, default=None, metavar='S',
                       help='skip (and report) the groups that would start after S seconds')
    group = parser.add_argument_group('families')
    group.add_argument('--families-batch', type=int, default=None,
                       help='default 32 on cuda, 8 on the CPU')
    group.add_argument('--families-res', type=int, default=None,
                       help="one resolution for every model (default: each model's own)")
    group.add_argument('--families-models', nargs='+', default=None, metavar='MODEL',
                       choices=[m.label for m in families.FAMILY_MODELS],
                       help='a subset of the models (default: all six, three pairs)')
    group.add_argument('--families-modes', nargs='+', default=None, metavar='MODE',
                       help='default fp32 on the CPU; fp32 and amp_bf16+channels_last on cuda')
    group = parser.add_argument_group('scaling')
    group.add_argument('--scaling-arch', default=benchmark_scaling.BASE_ARCH)
    group.add_argument('--scaling-factors', nargs='+', type=float,
                       default=list(benchmark_scaling.FACTORS), metavar='S')
    group.add_argument('--scaling-strategies', nargs='+', metavar='STRATEGY',
                       default=list(benchmark_scaling.STRATEGIES),
                       help='dWr d w r dwr (default) or any dX_wY_gZ_rV')
    group.add_argument('--scaling-size', type=int, default=224,
                       help="the base network's input size (default 224; scaled by r)")
    group.add_argument('--scaling-batch', type=int, default=None,
                       help='default 32 on cuda, 1 on the CPU')
    parser.add_argument('--goals', default=GOALS, metavar='PATH',
                        help='the goals the CPU report is read against (default: '
                        'docs/benchmark_goals.json; a missing file: no goals table)')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    parser.add_argument('--markdown', metavar='PATH', help='write a markdown report')
    parser.add_argument('--plot', metavar='PATH', help='write a PNG: the families picture '
                        '(speed vs flops) when families ran, else a bar chart of speed vs mmdet')
    parser.add_argument('--memory-child', help=argparse.SUPPRESS)
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        return _memory_child(args)
    return cli.run(lambda: _benchmark(args, argv), debug=args.debug)


def _benchmark(args, argv) -> None:
    device = resolve_device(args.device)
    modes = args.modes or (['inference', 'train', 'memory'] if device.type == 'cpu'
                           else ['matrix'])
    legacy = [m for m in modes if m in LEGACY_MODES]
    if legacy and device.type != 'cpu':
        raise BenchmarkError(f'modes {" ".join(legacy)} are the CPU fp32 report; with '
                             '--device cuda use --modes matrix families.')
    shapes = [matrix.parse_shape(s) for s in args.shapes] if args.shapes else matrix.MATRIX_SHAPES
    for text in (args.matrix_modes or []) + (args.families_modes or []):
        Mode.parse(text)
    result = dict(device=str(device), torch=torch.__version__,
                  gpu=torch.cuda.get_device_name(device) if device.type == 'cuda' else None)
    sections = []
    if legacy:
        sections.append(_legacy(args, legacy, result))
    if 'matrix' in modes:
        deadline = time.monotonic() + args.time_budget if args.time_budget else None
        result_matrix = matrix.run_matrix(
            device, args.archs, shapes, args.matrix_modes, args.tasks,
            [] if args.no_rivals else args.rivals, args.compile_rivals, args.onnx,
            args.rounds, args.warmup, args.min_sample_s, deadline, log=print)
        result['matrix'] = result_matrix.to_dict()
        sections.append(f'## Matrix on {_device_text(device, args)}\n\n' +
                        matrix.matrix_markdown(result_matrix))
        print(matrix.matrix_markdown(result_matrix))
    if 'families' in modes:
        fams = _families(args, device)
        result['families'] = fams
        sections.append(f'## Families on {_device_text(device, args)}, batch '
                        f"{fams['batch']}\n\n" + families.families_markdown(fams))
        print(families.families_markdown(fams))
    if 'scaling' in modes:
        result['scaling'] = benchmark_scaling.run_scaling(
            device, args.scaling_arch, args.scaling_factors, args.scaling_strategies,
            args.scaling_batch or (32 if device.type == 'cuda' else 1), args.scaling_size,
            args.rounds, args.warmup, args.min_sample_s, log=print)
        text = benchmark_scaling.scaling_markdown(result['scaling'])
        sections.append(f'## Model scaling on {_device_text(device, args)}\n\n' + text)
        print(text)
    if args.json:
        replace_bytes(args.json, json.dumps(result, indent=2).encode())
    if args.markdown:
        command = ' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        gpu = ('none on this machine, so there are no GPU numbers'
               if not torch.cuda.is_available() else torch.cuda.get_device_name() +
               (' (these tables are CPU-only)' if device.type == 'cpu' else ''))
        text = f'# Benchmarks\n\nGenerated by `python tools/benchmark.py {command}`. GPU: {gpu}.'
        replace_bytes(args.markdown, (text + '\n\n' + '\n\n'.join(sections) + '\n').encode())
    if args.plot:
        if 'families' in result:
            families.plot_families(result['families'], args.plot,
                                   f"speed vs flops on {_device_text(device, args)}, batch "
                                   f"{result['families']['batch']}")
        elif 'scaling' in result:
            benchmark_scaling.plot_scaling(
                result['scaling'], args.plot, f"{result['scaling']['arch']} scaled, "
                f"{_device_text(device, args)}, batch {result['scaling']['batch']}")
        elif result.get('timings'):
            cpu_report.plot_speedups(result['timings'], args.plot, result['header'])


def _device_text(device, args) -> str:
    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)}, torch {torch.__version__}'
    return (f'the CPU ({platform.processor() or platform.machine()}, {args.threads} threads), '
            f'torch {torch.__version__}')


def _families(args, device):
    batch = args.families_batch or (32 if device.type == 'cuda' else 8)
    modes = args.families_modes or (['fp32', 'amp_bf16+channels_last'] if device.type == 'cuda'
                                    else ['fp32'])
    models = [m for m in families.FAMILY_MODELS
              if not args.families_models or m.label in args.families_models]
    return families.run_families(device, batch, modes, args.families_res, args.rounds,
                              args.warmup, args.min_sample_s, models, log=print)


def _legacy(args, modes, result) -> str:
    """The CPU fp32 report against mmdet (inference, train, memory, detector)."""
    size = tuple(args.size)
    sgemm = matmul_peak_tflops(torch.device('cpu'), torch.float32, 2048) * 1e3  # GFLOP/s
    cands, skipped = cpu_report.candidates_for(args.arch, rivals=not args.no_rivals,
                                               onnx=args.onnx)
    for s in skipped:
        print(f"skipped {s['name']}: {s['reason']}")
    timings = []
    for mode in modes:
        if mode in TASKS:
            timings += cpu_report.time_candidates(cands, mode, args.batch, size, args.rounds,
                                                  args.warmup)
    if 'detector' in modes:
        timings += cpu_report.time_detectors(cpu_report.detector_builders(ROOT), args.batch, size,
                                             rounds=max(1, args.rounds // 2), warmup=args.warmup)
    rows = cpu_report.summarise(timings, args.arch, args.batch, size, sgemm)
    memory = _memory_rows(args) if 'memory' in modes else []

    header = (f'{args.arch}, batch {args.batch}x3x{size[0]}x{size[1]}, fp32 on the CPU, '
              f'{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}; '
              f'sgemm peak {sgemm:.0f} GFLOP/s; median of {args.rounds} interleaved rounds')
    print(header)
    for r in rows:
        perf = (f"{r['gflops']:6.1f} GFLOP/s  {100 * r['sgemm_fraction']:5.1f}% of sgemm"
                if r['gflops'] else '')
        print(f"{r['mode']:16s} {r['name']:34s} {r['seconds']:8.3f} s  {r['speedup']:5.2f}x  {perf}")
    for r in memory:
        print(f"memory    {r['name']:30s} {r['peak_mb']:8.0f} MiB  "
              f"{r['ratio_to_ours_nchw']:.2f}x of ours (NCHW)")
    result.update(header=header, sgemm_gflops=sgemm, timings=rows, memory=memory,
                  skipped=skipped)
    text = cpu_report.markdown(rows, f'Measured: {header}.')
    if memory:
        text += ('\n\n| training-step peak memory | MiB | vs ours (NCHW) |\n|---|---|---|\n' +
                 '\n'.join(f"| {r['name']} | {r['peak_mb']:.0f} | {r['ratio_to_ours_nchw']:.2f}x |"
                            for r in memory))
    goals = cpu_report.load_goals(args.goals)
    return text + ('\n\n' + cpu_report.goals_markdown(goals, rows, memory) if goals else '')


if __name__ == '__main__':
    sys.exit(main())
