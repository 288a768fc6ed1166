"""The README's table of supported stacks: versions from each stack's pins
(``requirements/constraints*.txt``), what was run on it and when from ``docs/support.json``.

    python tools/support_matrix.py            # print the table
    python tools/support_matrix.py --write    # put it into README.md between its markers
"""
import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ('<!-- support-table:start -->\n', '<!-- support-table:end -->')
COLUMNS = ('python', 'torch', 'torchvision', 'numpy', 'mmcv', 'mmengine', 'mmdet',
           'mmsegmentation', 'mmpretrain', 'setuptools')


def pins(path: Path) -> dict:
    """``name==version`` lines of a constraints file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if '==' in line:
            name, version = line.split('==')
            found[name.strip().lower()] = version.strip()
    return found


def table() -> str:
    stacks = json.loads((ROOT / 'docs' / 'support.json').read_text())
    head = ['stack', *COLUMNS, 'what ran', 'result', 'date']
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for stack in stacks:
        versions = pins(ROOT / 'requirements' / stack['constraints'])
        versions.update(stack.get('versions', {}))
        cells = [stack['name'], *(versions.get(c, '') for c in COLUMNS), stack['ran'],
                 stack['result'], stack['date']]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--write', action='store_true', help='update README.md in place')
    args = parser.parse_args()
    text = table()
    if not args.write:
        print(text)
        return
    readme = ROOT / 'README.md'
    before, rest = readme.read_text().split(MARKERS[0])
    after = rest.split(MARKERS[1])[1]
    readme.write_text(before + MARKERS[0] + text + '\n' + MARKERS[1] + after)


if __name__ == '__main__':
    main()
