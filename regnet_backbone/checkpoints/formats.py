"""One declarative key table per checkpoint layout, and the key mapping they drive.

A table pairs each of *our* module paths (see ``regnet_backbone/models/blocks.py``) with the
module path another code base uses for the same tensor. Paths may contain ``{stage}`` (1-based
stage number) and ``{block}`` (block index, counted from the layout's ``first_block``); parameter
names (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``) are the
same everywhere and pass through unchanged. The same table maps theirs -> ours (import) and
ours -> theirs (export).

mmdet's ``RegNet`` (a ResNet subclass) may also carry a deformable 3x3 conv's offset branch
(``conv2.conv_offset``) and ResNet plugins (mmcv's ``ContextBlock``, ``GeneralizedAttention``,
``NonLocal2d``, named ``*_block`` by mmcv's ``build_plugin_layer``). ``RegNetBackbone`` names
them the same way, so these *extension* tensors pass through the mmdet table unchanged; their
shapes are checked against the model that loads them (:data:`EXTENSION_KEY`).
"""
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Pattern, Tuple

from .errors import AmbiguousFormatError, UnknownFormatError

#: Our own layout's name, as written to ``meta['source_format']`` for already-converted files.
OURS = 'regnet_backbone'

_FIELD = re.compile(r'\{(stage|block|plugin)\}')
#: What each template field matches: stage and block numbers, and a plugin module path
#: (``context_block``, ``gen_attention_block.query_conv``, ``nonlocal_block1.g.conv``, ...).
_FIELD_PATTERNS = {'stage': r'\d+', 'block': r'\d+', 'plugin': r'[A-Za-z_]\w*_block\w*(?:\.\w+)*'}
#: Our tensor names that no ImageNet RegNet has: DCN offsets and plugins (see above).
EXTENSION_KEY = re.compile(r'layer\d+\.\d+\.(conv2\.conv_offset|[A-Za-z_]\w*_block\w*)\.')


def _compile(template: str) -> Pattern:
    """Turn a module template into an anchored regex; a repeated field must repeat its value."""
    pattern, seen, pos = '', set(), 0
    for match in _FIELD.finditer(template):
        pattern += re.escape(template[pos:match.start()])
        name = match.group(1)
        pattern += f'(?P={name})' if name in seen else f'(?P<{name}>{_FIELD_PATTERNS[name]})'
        seen.add(name)
        pos = match.end()
    pattern += re.escape(template[pos:])
    return re.compile(pattern + r'$')


@dataclass(frozen=True)
class KeyLayout:
    """How one code base names the tensors of a RegNet.

    Attributes:
        name: the format name used by ``--src`` and ``meta['source_format']``.
        modules: (our module template, their module template) pairs.
        head: their classifier module paths; dropped on import, never written on export.
        channel_order: the colour order the first conv expects, 'RGB' or 'BGR'.
        first_block: the index of a stage's first block in their names (pycls and timm count
            from 1).
        wrapper: the dict key their files nest the state dict under, or None for a plain dict.
    """
    name: str
    modules: Tuple[Tuple[str, str], ...]
    head: Tuple[str, ...] = ()
    channel_order: str = 'RGB'
    first_block: int = 0
    wrapper: Optional[str] = None
    _ours: Tuple[Tuple[Pattern, str], ...] = field(init=False, repr=False, compare=False)
    _theirs: Tuple[Tuple[Pattern, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, '_ours', tuple((_compile(o), t) for o, t in self.modules))
        object.__setattr__(self, '_theirs', tuple((_compile(t), o) for o, t in self.modules))

    # --- key mapping --------------------------------------------------------------------------
    @staticmethod
    def _map(module: str, table, block_shift: int) -> Optional[str]:
        for pattern, target in table:
            match = pattern.match(module)
            if match:
                values = match.groupdict()
                if 'block' in values:
                    block = int(values['block']) + block_shift
                    if block < 0:
                        return None
                    values['block'] = str(block)
                return target.format(**values)
        return None

    def is_head(self, key: str) -> bool:
        """True for a classifier tensor of this layout (``head.fc.weight``, ``fc.bias``, ...)."""
        return key.rpartition('.')[0] in self.head

    def to_ours(self, key: str) -> Optional[str]:
        """Our name for their tensor ``key``; None when ``key`` is not a backbone tensor here."""
        module, _, param = key.rpartition('.')
        ours = self._map(module, self._theirs, -self.first_block)
        return None if ours is None else f'{ours}.{param}'

    def from_ours(self, key: str) -> Optional[str]:
        """Their name for our tensor ``key``; None when this layout has no such tensor."""
        module, _, param = key.rpartition('.')
        theirs = self._map(module, self._ours, self.first_block)
        return None if theirs is None else f'{theirs}.{param}'


_B = 'layer{stage}.{block}.'  # our block prefix, to keep the tables one line per module

PYCLS = KeyLayout(
    name='pycls', channel_order='BGR', first_block=1, wrapper='model_state', head=('head.fc', ),
    modules=(
        ('stem.conv', 'stem.conv'),
        ('stem.norm', 'stem.bn'),
        (_B + 'conv1', 's{stage}.b{block}.f.a'),
        (_B + 'norm1', 's{stage}.b{block}.f.a_bn'),
        (_B + 'conv2', 's{stage}.b{block}.f.b'),
        (_B + 'norm2', 's{stage}.b{block}.f.b_bn'),
        (_B + 'se.fc1', 's{stage}.b{block}.f.se.f_ex.0'),
        (_B + 'se.fc2', 's{stage}.b{block}.f.se.f_ex.2'),
        (_B + 'conv3', 's{stage}.b{block}.f.c'),
        (_B + 'norm3', 's{stage}.b{block}.f.c_bn'),
        (_B + 'downsample.conv', 's{stage}.b{block}.proj'),
        (_B + 'downsample.norm', 's{stage}.b{block}.bn'),
    ))

TORCHVISION = KeyLayout(
    name='torchvision', channel_order='RGB', first_block=0, wrapper=None, head=('fc', ),
    modules=(
        ('stem.conv', 'stem.0'),
        ('stem.norm', 'stem.1'),
        (_B + 'conv1', 'trunk_output.block{stage}.block{stage}-{block}.f.a.0'),
        (_B + 'norm1', 'trunk_output.block{stage}.block{stage}-{block}.f.a.1'),
        (_B + 'conv2', 'trunk_output.block{stage}.block{stage}-{block}.f.b.0'),
        (_B + 'norm2', 'trunk_output.block{stage}.block{stage}-{block}.f.b.1'),
        (_B + 'se.fc1', 'trunk_output.block{stage}.block{stage}-{block}.f.se.fc1'),
        (_B + 'se.fc2', 'trunk_output.block{stage}.block{stage}-{block}.f.se.fc2'),
        (_B + 'conv3', 'trunk_output.block{stage}.block{stage}-{block}.f.c.0'),
        (_B + 'norm3', 'trunk_output.block{stage}.block{stage}-{block}.f.c.1'),
        (_B + 'downsample.conv', 'trunk_output.block{stage}.block{stage}-{block}.proj.0'),
        (_B + 'downsample.norm', 'trunk_output.block{stage}.block{stage}-{block}.proj.1'),
    ))

TIMM = KeyLayout(
    name='timm', channel_order='RGB', first_block=1, wrapper=None, head=('head.fc', ),
    modules=(
        ('stem.conv', 'stem.conv'),
        ('stem.norm', 'stem.bn'),
        (_B + 'conv1', 's{stage}.b{block}.conv1.conv'),
        (_B + 'norm1', 's{stage}.b{block}.conv1.bn'),
        (_B + 'conv2', 's{stage}.b{block}.conv2.conv'),
        (_B + 'norm2', 's{stage}.b{block}.conv2.bn'),
        (_B + 'se.fc1', 's{stage}.b{block}.se.fc1'),
        (_B + 'se.fc2', 's{stage}.b{block}.se.fc2'),
        (_B + 'conv3', 's{stage}.b{block}.conv3.conv'),
        (_B + 'norm3', 's{stage}.b{block}.conv3.bn'),
        (_B + 'downsample.conv', 's{stage}.b{block}.downsample.conv'),
        (_B + 'downsample.norm', 's{stage}.b{block}.downsample.bn'),
    ))

# mmdet's and mmpretrain's RegNet are ResNet subclasses: ResNet names, RegNetX only (no SE).
# Their published weights are pycls's, renamed, so the first conv still expects BGR.
MMDET = KeyLayout(
    name='mmdet', channel_order='BGR', first_block=0, wrapper='state_dict', head=('fc', ),
    modules=(
        ('stem.conv', 'conv1'),
        ('stem.norm', 'bn1'),
        (_B + 'conv1', 'layer{stage}.{block}.conv1'),
        (_B + 'norm1', 'layer{stage}.{block}.bn1'),
        (_B + 'conv2', 'layer{stage}.{block}.conv2'),
        (_B + 'norm2', 'layer{stage}.{block}.bn2'),
        (_B + 'conv3', 'layer{stage}.{block}.conv3'),
        (_B + 'norm3', 'layer{stage}.{block}.bn3'),
        (_B + 'downsample.conv', 'layer{stage}.{block}.downsample.0'),
        (_B + 'downsample.norm', 'layer{stage}.{block}.downsample.1'),
        (_B + 'conv2.conv_offset', 'layer{stage}.{block}.conv2.conv_offset'),
        (_B + '{plugin}', 'layer{stage}.{block}.{plugin}'),
    ))

REGNET_BACKBONE = KeyLayout(
    name=OURS, channel_order='RGB', first_block=0, wrapper='state_dict', head=(),
    modules=tuple((m, m) for m in (
        'stem.conv', 'stem.norm', _B + 'conv1', _B + 'norm1', _B + 'conv2', _B + 'norm2',
        _B + 'se.fc1', _B + 'se.fc2', _B + 'conv3', _B + 'norm3', _B + 'downsample.conv',
        _B + 'downsample.norm', _B + 'conv2.conv_offset', _B + '{plugin}')))

#: Every layout, by name. Detection tries them all; ``--src`` picks one.
LAYOUTS: Dict[str, KeyLayout] = {
    layout.name: layout for layout in (PYCLS, TORCHVISION, TIMM, MMDET, REGNET_BACKBONE)
}
#: The formats a user may name as a source (ours is detected, never asked for).
SOURCE_FORMATS = ('pycls', 'torchvision', 'timm', 'mmdet')


def get_layout(name: str) -> KeyLayout:
    """The layout called ``name``; unknown names raise ``UnknownFormatError`` listing valid ones."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise UnknownFormatError(f'unknown checkpoint format {name!r}; use one of '
                                 f'{", ".join(LAYOUTS)} (or auto).') from None


def unmatched_keys(layout: KeyLayout, keys: Iterable[str]) -> List[str]:
    """The keys that are neither a backbone tensor nor a classifier tensor of ``layout``."""
    return [k for k in keys if not layout.is_head(k) and layout.to_ours(k) is None]


def detect_layout(keys: Iterable[str]) -> KeyLayout:
    """The single layout whose tables account for every key.

    Raises ``AmbiguousFormatError`` when several do (name the source with ``--src``) and
    ``UnknownFormatError`` when none does, naming the closest layout and a few stray keys.
    """
    keys = list(keys)
    if not keys:
        raise UnknownFormatError('the checkpoint holds no tensors; pass a RegNet checkpoint.')
    misses = {name: unmatched_keys(layout, keys) for name, layout in LAYOUTS.items()}
    # A layout must also recognise at least one backbone tensor (not only a head).
    full = [name for name, miss in misses.items()
            if not miss and any(LAYOUTS[name].to_ours(k) for k in keys)]
    if len(full) == 1:
        return LAYOUTS[full[0]]
    if full:
        raise AmbiguousFormatError(
            f'the tensor names fit several formats ({", ".join(full)}); name the source with '
            f'--src (src= in the library).')
    best = min(misses, key=lambda name: len(misses[name]))
    hits = len(keys) - len(misses[best])
    if hits == 0 or hits < len(keys) // 2:
        raise UnknownFormatError(
            f'not a RegNet checkpoint in any known format ({", ".join(SOURCE_FORMATS)}); '
            f'first tensor names: {", ".join(keys[:3])}.')
    raise UnknownFormatError(
        f'the tensor names look like {best} but {len(misses[best])} of {len(keys)} are not part '
        f'of its RegNet layout (e.g. {", ".join(misses[best][:3])}); pass a plain RegNet '
        f'backbone or classifier checkpoint.')
