"""Sample design spaces, fit the RegNet rule, and compare studies' error EDFs (the paper's method).

    python tools/design_space.py sample anynetx_a --n 100 --flops 360e6 400e6 --out samples.json
    python tools/design_space.py fit --arch regnetx_3.2gf --json
    python tools/design_space.py fit --depths 1 2 7 12 --widths 32 64 160 384
    python tools/design_space.py edf work_dirs/a/results.json work_dirs/b/results.json \\
        --metric coco/bbox_mAP --normalize flops --bins 10 --plot edf.png
    python tools/design_space.py scale regnety_400mf --factor 4 --strategy dWr
    python tools/design_space.py scale regnetx_400mf --flops 40e9 --input-size 800 1333 \\
        --config configs/mask_rcnn_regnetx_400mf_fpn.py --out work_dirs/scaled/mask_rcnn.py

Spaces: anynetx_a .. anynetx_e, regnet, regnetx, regnety (see regnet_backbone/design/sampling.py
for their ranges). Complexity is counted as tools/analyze_complexity.py counts it: multiply-adds,
params and activations with the 1000-class head at --input-size (default 224x224, the paper's).
scale: fast compound model scaling (Dollar, Singh and Girshick, CVPR 2021) of any arch by a flops
factor or to a flops target (within 2% by default); see regnet_backbone/design/scaling.py for the
rules.
Bottleneck ratios are this package's w_b / w (pycls BOT_MUL, mmdet bot_mul), the inverse of the
paper's b = w / w_b: the paper's b in {1, 2, 4} is bottleneck_ratio in {1, 0.5, 0.25}.
"""
import argparse
import json
import sys
import textwrap
import warnings

# mmengine imports pkg_resources (setuptools < 82); keep its deprecation notice off the terminal.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


from regnet_backbone.atomic import replace_bytes, replace_file  # noqa: E402
from regnet_backbone.design import fit as fit_lib  # noqa: E402
from regnet_backbone.design import results as results_lib  # noqa: E402
from regnet_backbone.design import sampling, scaling  # noqa: E402
from regnet_backbone.runtime import cli  # noqa: E402


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
    """A preset name, or a JSON arch dict."""
    if not text.lstrip().startswith('{'):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f'{text!r} is not valid JSON ({e})') from None


def cmd_fit(args):
    if args.arch is not None:
        widths = fit_lib.block_widths_of(args.arch)
    else:
        widths = [w for w, d in zip(args.widths, args.depths) for _ in range(d)]
    result = fit_lib.fit_regnet(widths)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f'w0={result.w0} wa={result.wa:g} wm={result.wm:g} depth={result.depth} '
              f'e_fit={result.e_fit:.6g}')


def _study_curves(args):
    # the study layer and scipy only here: a second or more of imports the other commands skip
    from scipy.stats import ecdf

    from regnet_backbone.study.analysis import read_trials
    from regnet_backbone.study.layout import StudyError
    from regnet_backbone.study.stats import normalized_edf
    curves = []
    for path in args.results:
        results, _, part = read_trials(path, args.metric, args.scale)
        usable = results_lib.one_per_sample(part.usable)
        if not usable:
            raise StudyError(f'{path}: no done trial to compare (status "done" with '
                             f'metrics_best[{args.metric!r}]).')
        errors = [e for _, e in usable]
        if args.normalize == 'none':
            sorted_e = sorted(errors)
            cdf = ecdf(errors).cdf.evaluate(sorted_e)
            weights = [1.0 / len(errors)] * len(errors)
        else:
            cx = [r[args.normalize] for r, _ in usable]
            sorted_e, cdf, weights = normalized_edf(errors, cx, args.bins)
        curves.append(dict(name=results_lib.study_name(results, path), n=len(errors),
                           errors=[float(e) for e in sorted_e], cdf=[float(c) for c in cdf],
                           weights=[float(w) for w in weights]))
    return curves


def _plot(curves, args):
    from matplotlib.figure import Figure  # a figure of its own: no pyplot, no global backend
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
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
    replace_file(args.plot, lambda tmp: fig.savefig(tmp, format='png', dpi=120))


def cmd_edf(args):
    from regnet_backbone.study.stats import ks_distance
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
        d = ks_distance(curves[0]['errors'], c['errors'], curves[0]['weights'], c['weights'])
        print(f"KS distance {curves[0]['name']} vs {c['name']}: {d:.3f}")


def _arch_line(arch: dict) -> str:
    return 'arch=dict(' + ', '.join(f'{k}={v!r}' for k, v in arch.items()) + ')'


def _counts(cx: dict) -> str:
    return (f"{cx['flops'] / 1e9:.4g} GF, {cx['params'] / 1e6:.4g} M params, "
            f"{cx['acts'] / 1e6:.4g} M acts")


def cmd_scale(args):
    size = tuple(args.input_size)
    if args.flops is not None:
        result = scaling.scale_to_flops(args.arch, args.flops, args.strategy, size,
                                        args.tolerance)
    else:
        result = scaling.scale_arch(args.arch, args.factor, args.strategy, size)
    written, texts = [], []
    if args.config:
        from regnet_backbone.study.scaled_config import scaled_config
    for base, out in zip(args.config or (), args.out or ()):
        cfg, notes = scaled_config(base, result)
        texts.append(cfg.pretty_text.encode())
        written.append(dict(config=base, out=out, notes=notes))
    for item, text in zip(written, texts):  # every config builds before any is written
        replace_bytes(item['out'], text)
    if args.json:
        data = result.to_dict()
        if written:
            data['configs'] = written
        print(json.dumps(data))
        return
    f = result.factors
    name = args.arch if isinstance(args.arch, str) else json.dumps(args.arch)
    print(f'{name} x{result.scale:.4g} in flops with {args.strategy} ({result.strategy}): '
          f"depth x{f['d']:.4g}, width x{f['w']:.4g}, group width x{f['g']:.4g}, "
          f"resolution x{f['r']:.4g}")
    print(_arch_line(result.arch))
    (h, w), (h0, w0) = result.scaled_input_size, result.input_size
    print(f'at {h}x{w} (input {h0}x{w0} x r): {_counts(result.complexity)}; unscaled at '
          f'{h0}x{w0}: {_counts(result.base_complexity)} (1000-class head)')
    if args.flops is not None:
        error = result.complexity['flops'] / args.flops - 1
        print(f'target {args.flops / 1e9:.4g} GF: {100 * error:+.2f}%')
    for item in written:
        print(f"wrote {item['out']} from {item['config']} (backbone arch replaced, init_cfg and "
              'load_from removed: no weights exist for this arch yet)')
        for line in item['notes']:
            print(f'  {line}')
        if result.resolution == 1:
            print('  image sizes unchanged: this strategy keeps the resolution')


def build_parser():
    epilog = __doc__.split('\n\n', 1)[1] + '\nedf: ' + textwrap.fill(results_lib.ERROR_RULES, 94)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    cli.add_debug_flag(common)

    p = sub.add_parser('sample', parents=[common],
                       help='sample networks of a design space (JSON list)',
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

    p = sub.add_parser('fit', parents=[common], help='fit the quantized linear rule (e_fit)',
                       description=fit_lib.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--arch', type=_arch_arg, help='a preset name or a JSON arch dict')
    src.add_argument('--depths', nargs='+', type=int, metavar='D', help='blocks per stage')
    p.add_argument('--widths', nargs='+', type=int, metavar='W',
                   help='width per stage (with --depths)')
    p.add_argument('--json', action='store_true',
                   help='print {"w0", "wa", "wm", "depth", "e_fit"} as JSON')
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        'edf', parents=[common], help="compare studies' error EDFs",
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

    p = sub.add_parser(
        'scale', parents=[common], help='scale an arch by a flops factor or to a flops target',
        description='Scale ARCH (fast compound scaling, Dollar et al. 2021) by --factor S in '
        'flops, or to --flops F (multiply-adds at --input-size x r, 1000-class head) within '
        f'--tolerance (default {100 * scaling.TOLERANCE:g}%). Prints the scaled arch as an '
        'arch=dict(...) line and its complexity; with --config, writes a config for it.')
    p.add_argument('arch', metavar='ARCH', type=_arch_arg, help='a preset name or a JSON arch '
                   'dict (RegNet parameters or AnyNet stage lists)')
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument('--factor', type=float, metavar='S', help='flops factor s (e.g. 4)')
    how.add_argument('--flops', type=float, metavar='F',
                     help='target flops in multiply-adds (e.g. 1.6e9)')
    p.add_argument('--tolerance', type=float, default=scaling.TOLERANCE, metavar='T',
                   help=f'how close --flops must land, relative (default {scaling.TOLERANCE:g})')
    p.add_argument('--strategy', default=scaling.DEFAULT_STRATEGY,
                   help=f'{", ".join(scaling.STRATEGIES)} or dX_wY_gZ_rV (default '
                   f'{scaling.DEFAULT_STRATEGY} = {scaling.STRATEGIES[scaling.DEFAULT_STRATEGY]})')
    p.add_argument('--input-size', nargs=2, type=int, default=(224, 224), metavar=('H', 'W'),
                   help="the unscaled network's input (default 224 224; e.g. 800 1333 for a "
                   'detector); complexity is counted at this size x r')
    p.add_argument('--json', action='store_true',
                   help='print {"arch", "factors", "flops", "params", "acts", "input_size", ...}')
    p.add_argument('--config', nargs='+', metavar='CONFIG',
                   help='write a config for the scaled arch from each of these mmdet / mmseg / '
                   'mmpretrain configs (e.g. the pretraining and the detection config)')
    p.add_argument('--out', nargs='+', metavar='PATH',
                   help='where each --config is written (atomically), one PATH per CONFIG')
    p.set_defaults(func=cmd_scale)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == 'fit' and (args.depths is None) != (args.widths is None):
        parser.error('--depths and --widths go together')
    if args.command == 'fit' and args.depths and len(args.depths) != len(args.widths):
        parser.error(f'--depths has {len(args.depths)} values but --widths has '
                     f'{len(args.widths)}: give one of each per stage')
    if args.command == 'scale' and len(args.config or ()) != len(args.out or ()):
        parser.error('--config and --out go together: one --out PATH per CONFIG')
    return cli.run(lambda: args.func(args), debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
