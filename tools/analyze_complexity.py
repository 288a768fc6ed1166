"""Stage lists, flops (multiply-adds), params and activations of RegNet architectures.

    python tools/analyze_complexity.py                       # every preset
    python tools/analyze_complexity.py regnetx_3.2gf --input-size 800 1333
    python tools/analyze_complexity.py --markdown            # the README's model-zoo table
    python tools/analyze_complexity.py '{"w0":24,"wa":36.44,"wm":2.49,"depth":13,"group_w":8}'
    python tools/analyze_complexity.py '{"depths":[1,2],"widths":[32,64],"group_widths":[8,8]}'

An arch given as JSON uses the keys of ``RegNetBackbone(arch=...)``: RegNet parameters (w0, wa, wm,
depth, group_width, bottleneck_ratio, se_ratio) or AnyNet stage lists (depths, widths,
group_widths, bottleneck_ratios, se_ratio). bottleneck_ratio is w_b / w (pycls BOT_MUL, mmdet
bot_mul), the inverse of the paper's b = w / w_b: the paper's b = 4 is bottleneck_ratio 0.25.
"""
import argparse
import json
import sys

from regnet_backbone.design.presets import resolve_arch
from regnet_backbone.design.summary import all_presets, describe, markdown_table
from regnet_backbone.runtime import cli


def _arch(text):
    """argparse type: a preset name or a JSON object (an arch dict), checked by resolving it.

    The design layer raises plain ``ValueError`` / ``TypeError`` for an unknown name or broken
    stage lists; argparse reports them as usage errors (until it raises a ``RegNetError``)."""
    arch = text
    if text.lstrip().startswith('{'):
        try:
            arch = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f'arch {text!r} is not valid JSON: {err}') from None
        if not isinstance(arch, dict):
            raise argparse.ArgumentTypeError(f'arch {text!r} must be a JSON object.')
    try:
        resolve_arch(arch)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return arch


def _label(arch):
    return arch if isinstance(arch, str) else json.dumps(arch, sort_keys=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archs', nargs='*', type=_arch,
                        help='preset names or JSON arch dicts (default: every preset)')
    parser.add_argument('--input-size', nargs=2, type=int, default=(224, 224), metavar=('H', 'W'))
    out = parser.add_mutually_exclusive_group()
    out.add_argument('--json', action='store_true', help='print JSON')
    out.add_argument('--markdown', action='store_true', help='print a markdown table')
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _report(args), debug=args.debug)


def _report(args) -> None:
    rows = [describe(a, tuple(args.input_size)) for a in args.archs or all_presets()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        print(markdown_table([dict(r, arch=_label(r['arch'])) for r in rows]))
    else:
        for r in rows:
            print(f"{_label(r['arch']):18s} depths={r['depths']} widths={r['widths']} "
                  f"groups={r['group_widths']} se={r['se_ratio']} flops={r['flops']:,} "
                  f"params={r['params']:,} acts={r['acts']:,}")


if __name__ == '__main__':
    sys.exit(main())
