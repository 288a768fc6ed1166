"""Sample design spaces, fit the RegNet rule, and compare studies' error EDFs (the paper's method).

    python tools/design_space.py sample anynetx_a --n 100 --flops 360e6 400e6 --out samples.json
    python tools/design_space.py fit --arch regnetx_3.2gf --json
    python tools/design_space.py fit --depths 1 2 7 12 --widths 32 64 160 384
    python tools/design_space.py edf work_dirs/a/results.json work_dirs/b/results.json \\
        --metric coco/bbox_mAP --normalize flops --bins 10 --plot edf.png

Spaces: anynetx_a .. anynetx_e, regnet, regnetx, regnety (see regnet_backbone/design/sampling.py
for their ranges). Complexity is counted as tools/analyze_complexity.py counts it: multiply-adds,
params and activations with the 1000-class head at --input-size (default 224x224, the paper's).
Bottleneck ratios are this package's w_b / w (pycls BOT_MUL, mmdet bot_mul), the inverse of the
paper's b = w / w_b: the paper's b in {1, 2, 4} is bottleneck_ratio in {1, 0.5, 0.25}.
"""
import argparse
import json
import os
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from regnet_backbone.atomic import replace_bytes, replace_file  # noqa: E402
from regnet_backbone.design import fit as fit_lib  # noqa: E402
from regnet_backbone.design import results as results_lib  # noqa: E402
from regnet_backbone.design import sampling, stats  # noqa: E402


def _window(values):
    return None if values is None else (values[0], values[1])


def cmd_sample(args):
    samples = sampling.sample(args.space, args.n, seed=args.seed, flops=_window(args.flops),
                              params=_window(args.params), acts=_window(args.acts),
                              input_size=tuple(args.input_size), max_draws=args.max_draws)
    text = json.dumps([s.to_dict() for s in samples], indent=2) + '\n'
    if args.out:
        replace_bytes(args.out, text.encode())
    else:
        sys.stdout.write(text)


def _arch_arg(text):
    if text.lstrip().startswith('{'):
        arch = json.loads(text)
        if not isinstance(arch, dict):
            raise ValueError(f'--arch {text!r} must be a JSON object.')
        return arch
    return text


def cmd_fit(args):
    if args.arch is not None:
        widths = fit_lib.block_widths_of(_arch_arg(args.arch))
    else:
        if len(args.depths) != len(args.widths):
            raise ValueError(f'--depths has {len(args.depths)} values but --widths has '
                             f'{len(args.widths)}: give one of each per stage.')
        widths = [w for w, d in zip(args.widths, args.depths) for _ in range(d)]
    result = fit_lib.fit_regnet(widths)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f'w0={result.w0} wa={result.wa:g} wm={result.wm:g} depth={result.depth} '
              f'e_fit={result.e_fit:.6g}')


def _study_curves(args):
    curves = []
    for path in args.results:
        results = results_lib.load_results(path)
        name = results_lib.study_name(results, path)
        errors = results_lib.errors_for(results, args.metric, args.scale)
        if not errors:
            raise ValueError(f'{path}: no done trial to compare (status "done" with '
                             f'metrics_best[{args.metric!r}]).')
        if args.normalize == 'none':
            sorted_e, cdf = stats.edf(errors)
            weights = [1.0 / len(errors)] * len(errors)
        else:
            cx = [r[args.normalize] for r in results_lib.done_trials(results)]
            sorted_e, cdf, weights = stats.normalized_edf(errors, cx, args.bins)
        curves.append(dict(name=name, n=len(errors), errors=[float(e) for e in sorted_e],
                           cdf=[float(c) for c in cdf], weights=[float(w) for w in weights]))
    return curves


def _plot(curves, args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4))
    for c in curves:
        mean = sum(e * w for e, w in zip(c['errors'], c['weights']))
        label = f"{c['name']}: n={c['n']} | min={c['errors'][0]:.1f} | mean={mean:.1f}"
        ax.step([c['errors'][0]] + c['errors'], [0.0] + c['cdf'], where='post', label=label)
    norm = '' if args.normalize == 'none' else f', normalised by {args.normalize}'
    ax.set_xlabel(f'error (%) from {args.metric}')
    ax.set_ylabel('cumulative prob.')
    ax.set_title(f'error EDF{norm}')
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    try:
        replace_file(args.plot, lambda tmp: fig.savefig(tmp, format='png', dpi=120))
    finally:
        plt.close(fig)


def cmd_edf(args):
    curves = _study_curves(args)
    if args.plot:
        _plot(curves, args)
    if args.json:
        print(json.dumps(dict(studies=curves)))
        return
    for c in curves:
        mean = sum(e * w for e, w in zip(c['errors'], c['weights']))
        print(f"{c['name']}: n={c['n']} min={c['errors'][0]:.2f} mean={mean:.2f}")
    for c in curves[1:]:
        d = stats.ks_distance(curves[0]['errors'], c['errors'], curves[0]['weights'],
                              c['weights'])
        print(f"KS distance {curves[0]['name']} vs {c['name']}: {d:.3f}")


def build_parser():
    epilog = __doc__.split('\n\n', 1)[1] + '\nedf: ' + textwrap.fill(results_lib.ERROR_RULES, 94)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('sample', help='sample networks of a design space (JSON list)',
                       description='Sample N distinct networks of SPACE inside a complexity '
                       'window; writes a JSON list of {arch, flops, params, acts}.')
    p.add_argument('space', choices=sampling.SPACES, metavar='SPACE',
                   help=f'one of {", ".join(sampling.SPACES)}')
    p.add_argument('--n', type=int, required=True, help='number of samples')
    for name, unit in (('flops', 'multiply-adds'), ('params', 'parameters'),
                       ('acts', 'activations')):
        p.add_argument(f'--{name}', nargs=2, type=float, metavar=('LO', 'HI'),
                       help=f'inclusive window in {unit} (1000-class head, at --input-size)')
    p.add_argument('--input-size', nargs=2, type=int, default=(224, 224), metavar=('H', 'W'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max-draws', type=int, default=1_000_000,
                   help='give up after this many draws (default 1e6, as pycls)')
    p.add_argument('--out', metavar='FILE', help='write the JSON here (default: stdout)')
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser('fit', help='fit the quantized linear rule (e_fit)',
                       description=fit_lib.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--arch', help='a preset name or a JSON arch dict')
    src.add_argument('--depths', nargs='+', type=int, metavar='D', help='blocks per stage')
    p.add_argument('--widths', nargs='+', type=int, metavar='W',
                   help='width per stage (with --depths)')
    p.add_argument('--json', action='store_true',
                   help='print {"w0", "wa", "wm", "depth", "e_fit"} as JSON')
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        'edf', help="compare studies' error EDFs",
        description="Compare the error EDFs of studies (each a results.json of tools/study.py "
        "collect, using metrics_best[KEY] of its done trials). " + results_lib.ERROR_RULES)
    p.add_argument('results', nargs='+', metavar='RESULTS', help="studies' results.json files")
    p.add_argument('--metric', required=True, metavar='KEY',
                   help='validation metric, e.g. coco/bbox_mAP (error 100*(1-v)) or mIoU, aAcc, '
                   'accuracy/top1 (error 100-v)')
    p.add_argument('--scale', choices=results_lib.SCALES,
                   help='how KEY is reported: fraction (error 100*(1-v)) or percent (100-v); '
                   'default: from the key')
    p.add_argument('--normalize', choices=('none', 'flops', 'params'), default='none',
                   help='complexity-normalised EDF (NDS): each of --bins bins weighs the same')
    p.add_argument('--bins', type=int, default=10, help='complexity bins (default 10)')
    p.add_argument('--plot', metavar='FILE.png', help='draw the EDFs into a PNG')
    p.add_argument('--json', action='store_true',
                   help='print {"studies": [{"name", "n", "errors", "cdf", "weights"}]}')
    p.set_defaults(func=cmd_edf)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == 'fit' and (args.depths is None) != (args.widths is None):
        parser.error('--depths and --widths go together')
    try:
        args.func(args)
    except (ValueError, TypeError, OSError) as err:  # json errors are ValueErrors
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        parser.exit(2, f'error: {message}\n')


if __name__ == '__main__':
    main()
