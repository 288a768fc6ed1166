"""Where each preset's ImageNet weights come from, as a Markdown table for the docs."""
from typing import List

from ..design.presets import PRESETS

MMDET_PREFIX = 'open-mmlab://'


def sources_rows() -> List[List[str]]:
    """One row per preset: name, pycls (name and URL), torchvision, timm, mmdet ('' when none)."""
    rows = []
    for name, preset in PRESETS.items():
        pycls = f'[{preset.pycls_name}]({preset.pycls_url})' if preset.pycls_url else ''
        rows.append([
            f'`{name}`', pycls,
            f'`{preset.torchvision_name}`' if preset.torchvision_name else '',
            f'`{preset.timm_name}`' if preset.timm_name else '',
            f'`{MMDET_PREFIX}{preset.mmdet_name}`' if preset.mmdet_name else '',
        ])
    return rows


def sources_table() -> str:
    """The preset -> checkpoint source table in Markdown (``docs/pretrained.md`` embeds it)."""
    header = ['preset', 'pycls (BGR)', 'torchvision', 'timm', 'mmdet (BGR)']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(cell or '-' for cell in row) + ' |' for row in sources_rows()]
    return '\n'.join(lines) + '\n'
