"""Keep the channels a neck or head expects equal to what ``RegNetBackbone`` produces.

A config names the backbone's arch once, but FPN's ``in_channels`` and mmseg heads'
``in_channels`` repeat its stage widths. Changing the arch (``--cfg-options
model.backbone.arch=...``, a design-space study) must change those too, or the first forward
fails with a raw conv shape error. :func:`follow_backbone_channels` derives them.
"""
from typing import List, Optional, Sequence, Tuple

from ..design.presets import resolve_arch
from ..models import DEFAULT_ARCH, scope_defaults

BACKBONE_TYPE = 'RegNetBackbone'
#: mmpretrain necks that pool each map without changing its channels.
POOLING_NECKS = ('GlobalAveragePooling', 'GeneralizedMeanPooling')


def backbone_out_channels(backbone: dict, scope: Optional[str] = None) -> List[int]:
    """Channels of each output of a ``RegNetBackbone`` config (its ``out_indices`` order), with
    the backbone's defaults under the config's default ``scope``."""
    widths = resolve_arch(backbone.get('arch', DEFAULT_ARCH)).widths
    indices = backbone.get('out_indices')
    if indices is None:
        indices = scope_defaults(scope)['out_indices']
    if isinstance(indices, int):
        indices = (indices, )
    n = len(widths)
    out = []
    for i in indices:
        if not isinstance(i, int) or not -n <= i < n:
            raise ValueError(f'model.backbone.out_indices {tuple(indices)} out of range for an '
                             f'arch with {n} stages: use indices in [0, {n}).')
        out.append(widths[i % n])
    return out


def _expected(head: dict, outs: Sequence[int]):
    """What ``head['in_channels']`` must be, given which backbone outputs it reads."""
    index = head.get('in_index')
    if index is None:  # FPN and friends read every output, in order
        return list(outs)
    try:
        if isinstance(index, (list, tuple)):
            return [outs[i] for i in index]
        return outs[index]
    except IndexError:
        raise ValueError(f'in_index {index} reads a backbone output that does not exist: the '
                         f'backbone has {len(outs)} outputs (out_indices).') from None


def _heads(model: dict) -> List[Tuple[str, dict]]:
    found = []
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        node = model.get(key)
        if isinstance(node, dict):
            found.append((f'model.{key}', node))
        elif isinstance(node, (list, tuple)):
            found += [(f'model.{key}[{i}]', n) for i, n in enumerate(node) if isinstance(n, dict)]
    return found


def follow_backbone_channels(cfg) -> List[str]:
    """Set every neck/head ``in_channels`` to the ``RegNetBackbone``'s output channels.

    Only the first consumer of the backbone's outputs is touched: the neck when there is one
    (FPN), otherwise the heads (mmseg's ``decode_head`` / ``auxiliary_head``, which read the
    outputs through ``in_index``). An mmpretrain classifier's pooling neck keeps the channels,
    so its ``head`` gets the last output's channels. Returns one line per change (``'model.neck.in_channels:
    [96, ...] -> [32, ...]'``) so that callers can log them; nothing when they already agree or
    the backbone is not a ``RegNetBackbone``.
    """
    model = cfg.get('model') if hasattr(cfg, 'get') else None
    backbone = model.get('backbone') if model else None
    if not backbone or backbone.get('type') != BACKBONE_TYPE:
        return []
    outs = backbone_out_channels(backbone, cfg.get('default_scope'))
    heads = _heads(model)
    if any(name.startswith('model.neck') for name, _ in heads):
        heads = [(name, node) for name, node in heads if name.startswith('model.neck')]
    neck = model.get('neck')
    classifier = (isinstance(neck, dict) and neck.get('type') in POOLING_NECKS
                  and isinstance(model.get('head'), dict))
    if classifier:
        heads = [('model.head', model['head'])]
    changes = []
    for name, node in heads:
        if 'in_channels' not in node:
            continue
        want = outs[-1] if classifier else _expected(node, outs)
        have = node['in_channels']
        if isinstance(have, tuple):
            have = list(have)
        if have != want:
            node['in_channels'] = want
            changes.append(f'{name}.in_channels: {have} -> {want}')
    return changes
