"""Stage lists, flops (multiply-adds), params and activations of RegNet architectures.

    python tools/analyze_complexity.py                       # every preset
    python tools/analyze_complexity.py regnetx_3.2gf --input-size 800 1333
    python tools/analyze_complexity.py --markdown            # the README's model-zoo table
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from regnet_backbone.design.zoo import all_presets, describe, markdown_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('archs', nargs='*', help='preset names (default: all)')
    parser.add_argument('--input-size', nargs=2, type=int, default=(224, 224), metavar=('H', 'W'))
    out = parser.add_mutually_exclusive_group()
    out.add_argument('--json', action='store_true', help='print JSON')
    out.add_argument('--markdown', action='store_true', help='print a markdown table')
    args = parser.parse_args(argv)
    try:
        rows = [describe(a, tuple(args.input_size)) for a in (args.archs or all_presets())]
    except ValueError as err:
        parser.exit(2, f'error: {err}\n')
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        print(markdown_table(rows))
    else:
        for r in rows:
            print(f"{r['arch']:18s} depths={r['depths']} widths={r['widths']} "
                  f"groups={r['group_widths']} se={r['se_ratio']} flops={r['flops']:,} "
                  f"params={r['params']:,} acts={r['acts']:,}")


if __name__ == '__main__':
    main()
