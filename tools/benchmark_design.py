"""Time the design-space math: the quantized linear fit and the samplers (pure Python, one core).

    python tools/benchmark_design.py                 # the default table
    python tools/benchmark_design.py --repeats 5 --samples 50

Prints a markdown table: the median wall time (seconds) of ``fit_regnet`` on random sorted widths
at several depths, of ``sample`` drawing ``--samples`` networks of each design space in a flops
window, and of a sampler giving up on an unreachable window after ``--max-draws`` draws. These
figures belong here, not in the tests: the tests check what the functions compute.
"""
import argparse
import random
import statistics
import sys
import time

from regnet_backbone.design.fit import fit_regnet
from regnet_backbone.design.sampling import SPACES, SamplingError, sample
from regnet_backbone.runtime import cli


def median_seconds(fn, repeats):
    """Median wall time of ``repeats`` calls of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rows(repeats, samples, max_draws, depths=(16, 32, 64)):
    """(what, seconds) pairs, in the order of the table."""
    out = []
    for depth in depths:
        rng = random.Random(depth)
        widths = sorted(8 * rng.randint(1, 128) for _ in range(depth))
        out.append((f'fit_regnet, depth {depth}',
                    median_seconds(lambda w=widths: fit_regnet(w), repeats)))
    for space in SPACES:
        out.append((f'sample {space}: {samples} in 200-800 MF',
                    median_seconds(lambda sp=space: sample(sp, samples, seed=0,
                                                           flops=(200e6, 800e6)), repeats)))

    def unreachable():
        try:
            sample('regnetx', 3, flops=(1, 2), max_draws=max_draws)
        except SamplingError:
            return
        raise AssertionError('a window of 1-2 flops was reached')
    out.append((f'sample regnetx: unreachable window, {max_draws} draws',
                median_seconds(unreachable, repeats)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3, help='timed calls per row (median)')
    parser.add_argument('--samples', type=int, default=20, help='networks per sampler row')
    parser.add_argument('--max-draws', type=int, default=2000,
                        help='draws before the unreachable-window row gives up')
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error('--repeats must be >= 1')

    def body():
        print('| what | median s |\n|---|---|')
        for what, seconds in rows(args.repeats, args.samples, args.max_draws):
            print(f'| {what} | {seconds:.3f} |')
    return cli.run(body, debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
