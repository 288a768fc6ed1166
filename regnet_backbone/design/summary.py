"""Per-architecture summaries (stage lists, flops, params, activations) and the README's model-zoo
table (pure Python). The zoo itself, one line per model, is :mod:`.presets`."""
from typing import Dict, List, Sequence, Tuple, Union

from .complexity import complexity
from .presets import PRESETS, resolve_arch
from .space import AnyNetSpec


def describe(arch: Union[str, dict, AnyNetSpec], input_size: Tuple[int, int] = (224, 224)) -> Dict:
    """Stage lists plus flops/params/acts (with the 1000-class head and backbone only).

    ``arch`` is a preset name, a dict (RegNet parameters or AnyNet stage lists, as
    ``RegNetBackbone(arch=...)`` takes) or an ``AnyNetSpec``. The row's ``arch`` is the name, or a
    copy of the dict, or None for an ``AnyNetSpec``.
    """
    spec = resolve_arch(arch)
    full = complexity(spec, input_size=input_size, num_classes=1000)
    backbone = complexity(spec, input_size=input_size, num_classes=None)
    return dict(
        arch=arch if isinstance(arch, str) else dict(arch) if isinstance(arch, dict) else None,
        input_size=list(input_size),
        depths=list(spec.depths), widths=list(spec.widths), group_widths=list(spec.group_widths),
        bottleneck_ratios=list(spec.bottleneck_ratios), se_ratio=spec.se_ratio,
        flops=full['flops'], params=full['params'], acts=full['acts'],
        backbone_flops=backbone['flops'], backbone_params=backbone['params'],
        backbone_acts=backbone['acts'])


def _si(value: int) -> str:
    return f'{value / 1e9:.2f}G' if value >= 1e9 else f'{value / 1e6:.1f}M'


def markdown_table(rows: Sequence[Dict]) -> str:
    """A markdown table of ``describe`` results (flops are multiply-adds)."""
    h, w = rows[0]['input_size'] if rows else (224, 224)
    lines = [
        f'| arch | depths | widths (= FPN in_channels) | group widths | SE | '
        f'flops @{h}x{w} | params | acts | backbone params |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f"| `{r['arch']}` | {r['depths']} | {r['widths']} | {r['group_widths']} | "
            f"{'yes' if r['se_ratio'] else '-'} | {_si(r['flops'])} | {_si(r['params'])} | "
            f"{_si(r['acts'])} | {_si(r['backbone_params'])} |")
    return '\n'.join(lines)


def all_presets() -> List[str]:
    return list(PRESETS)
