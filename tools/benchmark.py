"""Benchmark our RegNet backbone against mmdet's RegNet, torchvision and timm, side by side.

    python tools/benchmark.py --arch regnetx_3.2gf --batch 2 --size 512 512
    python tools/benchmark.py --modes inference train memory --json out.json
    python tools/benchmark.py --markdown docs/benchmarks.md --plot docs/benchmarks.png

This is a benchmark, not a test: it asserts nothing. See regnet_backbone/benchmark.py for the
method (one process, interleaved rounds, warm-up, medians; memory in a fresh process each).
"""
import argparse
import json
import os
import platform
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from regnet_backbone import benchmark as bench  # noqa: E402
from regnet_backbone.atomic import replace_bytes  # noqa: E402


def _memory_child(args) -> None:
    cand = next(c for c in bench.candidates_for(args.arch) if c.name == args.memory_child)
    print(json.dumps(bench.peak_train_memory_mb(cand.build, args.batch, tuple(args.size),
                                                cand.channels_last)))


def _memory_rows(args):
    """Peak memory of a training step per candidate, each in a fresh process."""
    names = [c.name for c in bench.candidates_for(args.arch, rivals=not args.no_rivals)
             if not c.inference_only]
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='regnetx_3.2gf')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', nargs=2, type=int, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--modes', nargs='+', default=['inference', 'train', 'memory'],
                        choices=['inference', 'train', 'memory', 'detector'],
                        help='detector: Mask R-CNN train/predict steps, our config vs mmdet\'s '
                        '(RegNetX-3.2GF configs; --batch/--size apply)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--no-rivals', action='store_true', help='time our variants only')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    parser.add_argument('--markdown', metavar='PATH', help='write a markdown report')
    parser.add_argument('--plot', metavar='PATH', help='write a PNG bar chart')
    parser.add_argument('--memory-child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        return _memory_child(args)

    size = tuple(args.size)
    sgemm = bench.measure_sgemm_gflops()
    cands = bench.candidates_for(args.arch, rivals=not args.no_rivals)
    timings = []
    for mode in args.modes:
        if mode in ('inference', 'train'):
            timings += bench.time_candidates(cands, mode, args.batch, size, args.rounds,
                                             args.warmup)
    if 'detector' in args.modes:
        timings += bench.time_detectors(_detector_builders(), args.batch, size,
                                        rounds=max(1, args.rounds // 2), warmup=args.warmup)
    rows = bench.summarise(timings, args.arch, args.batch, size, sgemm)
    memory = _memory_rows(args) if 'memory' in args.modes else []

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
    result = dict(header=header, sgemm_gflops=sgemm, timings=rows, memory=memory)
    if args.json:
        replace_bytes(args.json, json.dumps(result, indent=2).encode())
    if args.markdown:
        command = ' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        gpu = (f'{torch.cuda.get_device_name()} (this table is CPU-only)'
               if torch.cuda.is_available() else 'none on this machine, so there are no GPU numbers')
        text = (f'# Benchmarks\n\nGenerated by `python tools/benchmark.py {command}`. GPU: {gpu}.'
                '\n\n' + bench.markdown(rows, f'Measured: {header}.'))
        if memory:
            text += ('\n\n| training-step peak memory | MiB | vs ours (NCHW) |\n|---|---|---|\n' +
                     '\n'.join(f"| {r['name']} | {r['peak_mb']:.0f} | {r['ratio_to_ours_nchw']:.2f}x |"
                               for r in memory))
        text += '\n\n' + bench.targets_markdown(rows, memory)
        replace_bytes(args.markdown, (text + '\n').encode())
    if args.plot:
        _plot(rows, args.plot, header)


def _detector_builders():
    ours = os.path.join(ROOT, bench.OUR_MASK_RCNN)
    return {
        'mmdet RegNet Mask R-CNN': lambda: bench.build_detector(bench.MMDET_MASK_RCNN),
        'ours Mask R-CNN': lambda: bench.build_detector(ours),
        'ours Mask R-CNN channels_last': lambda: bench.build_detector(
            ours, {'model.backbone.channels_last': True}),
    }


def _plot(rows, path, header):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    modes = list(dict.fromkeys(r['mode'] for r in rows))
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        group = [r for r in rows if r['mode'] == mode]
        ax.barh([r['name'] for r in group], [r['speedup'] for r in group], color='tab:blue')
        ax.axvline(1.0, color='k', lw=0.8)
        ax.set_title(f'{mode}: speed vs mmdet RegNet (higher is better)')
        ax.invert_yaxis()
    fig.suptitle(header, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == '__main__':
    main()
