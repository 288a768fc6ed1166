"""Conversion between checkpoint layouts, and strict loading into a model.

Import (theirs -> ours): unwrap the file, keep the backbone's tensors (BN running statistics and
``num_batches_tracked`` included), drop the classifier, rename with the layout's table, put the
first conv in the wanted channel order, read the architecture off the shapes and check that every
tensor of that architecture is present with the right shape.
Export (ours -> theirs) is the same table read backwards.

Channel order: every file has a *native* order, the colour order its first conv expects (pycls
and mmdet: BGR; torchvision and timm: RGB; our files: ``meta['channel_order']``). Both orders use
the ImageNet statistics below on the 0-255 scale (in that order), so reversing the first conv's
input channels is all a change of order needs. ``convert`` and ``load_pretrained`` deliver the
order asked for, or the native one when none is asked for (``channel_order=None``).
Whole-model checkpoints (an mmdet detector or mmpretrain classifier built on mmdet's ``RegNet``)
are translated by :func:`translate_model_state_dict`: backbone tensors renamed, the rest kept.
"""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ..atomic import NotARegularFileError, resolve_output
from ..design.presets import PRESETS, get_preset
from .architecture import Architecture, expected_shapes, infer_architecture
from .errors import (ArchitectureMismatchError, CheckpointError, NotRegNetError,
                     OutputExistsError, UnknownFormatError)
from .fit import compare
from .formats import (EXTENSION_KEY, MMDET, OURS, KeyLayout, detect_layout, get_layout,
                      unmatched_keys)
from .io import file_sha256, nonfinite_tensors, read_checkpoint, write_atomic

#: What converted checkpoints expect: RGB, 0-255, these per-channel statistics.
RGB_MEAN = (123.675, 116.28, 103.53)
RGB_STD = (58.395, 57.12, 57.375)
#: The colour orders a first conv can expect.
CHANNEL_ORDERS = ('RGB', 'BGR')

#: Bumped when the layout of converted files changes.
FORMAT_VERSION = 1
#: Dict keys under which checkpoints nest their state dict, tried in this order.
_WRAPPERS = ('state_dict', 'model_state', 'model')
_STEM_WEIGHT = 'stem.conv.weight'


@dataclass
class ConvertedCheckpoint:
    """A checkpoint in our layout, ready to load into ``RegNetBackbone``.

    Attributes:
        state_dict: our tensor names -> tensors; the first conv expects RGB.
        architecture: what the shapes say the network is (``.preset`` names it).
        source_format: 'pycls', 'torchvision', 'timm', 'mmdet' or 'regnet_backbone'.
        dropped: source tensor names left out (classifier head, non-backbone modules).
        filled: our tensor names the source lacked and that were created (``num_batches_tracked``).
        source_meta: the source file's ``meta`` dict, if it had one.
        channel_order: the colour order ``state_dict``'s first conv expects, 'RGB' or 'BGR'.
        native_order: the order the source file's first conv expected.
    """
    state_dict: Dict[str, torch.Tensor]
    architecture: Architecture
    source_format: str
    dropped: List[str] = field(default_factory=list)
    filled: List[str] = field(default_factory=list)
    source_meta: dict = field(default_factory=dict)
    partial: Optional['PartialLoad'] = None
    channel_order: str = 'RGB'
    native_order: str = 'RGB'

    @property
    def arch(self) -> Optional[str]:
        """The preset name of the architecture, or None for a custom one."""
        return self.architecture.preset


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj: Any) -> Tuple[Dict[str, torch.Tensor], dict, List[str]]:
    """Find the state dict inside a loaded checkpoint and strip wrapper prefixes.

    Accepts a plain state dict, pycls's ``{'model_state': ...}``, mmengine's
    ``{'state_dict': ..., 'meta': ...}`` and ``{'model': ...}``. A ``module.`` prefix on every
    key (DataParallel) is removed; when some keys start with ``backbone.`` (a detector or
    classifier), only those are kept.
    Returns (state dict, meta dict, dropped key names).
    """
    meta = {}
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        if isinstance(obj.get('meta'), Mapping):
            meta = dict(obj['meta'])
        for key in _WRAPPERS:
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        else:
            keys = ', '.join(map(str, list(obj)[:6])) if isinstance(obj, Mapping) else ''
            raise UnknownFormatError(
                f'found no state dict in the checkpoint (top-level keys: {keys or "none"}); '
                f'expected tensors at the top level or under {", ".join(_WRAPPERS)}.')
    if not _is_state_dict(obj):
        raise UnknownFormatError(f'the checkpoint holds a {type(obj).__name__}, not a dict of '
                                 f'tensors; pass a model checkpoint.')
    state_dict = dict(obj)
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    dropped = []
    if any(k.startswith('backbone.') for k in state_dict):
        dropped = [k for k in state_dict if not k.startswith('backbone.')]
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items()
                      if k.startswith('backbone.')}
    return state_dict, meta, dropped


def _flip_first_conv(state_dict: Dict[str, torch.Tensor], key: str) -> None:
    """Reverse the first conv's input channels in place (BGR <-> RGB)."""
    weight = state_dict[key]
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise NotRegNetError(f'the first conv {key} has shape {list(weight.shape)}; swapping '
                             f'BGR and RGB needs 3 input channels.')
    state_dict[key] = weight.flip(1).contiguous()


def check_tensors(state_dict: Dict[str, torch.Tensor],
                  expected: Mapping[str, Tuple[int, ...]],
                  what: str,
                  cause: str = 'the checkpoint is incomplete or not a RegNet') -> List[str]:
    """Make ``state_dict`` hold exactly the ``expected`` names and shapes.

    A missing ``num_batches_tracked`` (older checkpoints) is created as 0 and its name returned;
    anything else missing, extra or misshapen raises ``NotRegNetError`` that names ``what``.
    """
    filled = []
    for key in expected:
        if key not in state_dict and key.endswith('.num_batches_tracked'):
            state_dict[key] = torch.tensor(0, dtype=torch.long)
            filled.append(key)
    mismatch = compare(state_dict, expected)
    if mismatch:
        raise NotRegNetError(f'the tensors do not form {what}: {mismatch.summary()}; {cause}.')
    return filled


def check_channel_order(order: Optional[str], what: str = 'channel_order') -> Optional[str]:
    """``order`` upper-cased if it is 'RGB', 'BGR' (or None); ``CheckpointError`` otherwise."""
    if order is None:
        return None
    if not isinstance(order, str) or order.upper() not in CHANNEL_ORDERS:
        raise CheckpointError(f"{what}={order!r} is not a channel order; use 'RGB' or 'BGR' "
                              f"(or leave it unset to keep the weights' own order).")
    return order.upper()


def native_order(layout: KeyLayout, meta: Mapping) -> str:
    """The channel order a file of ``layout`` with ``meta`` expects (ours: its meta says)."""
    if layout.name == OURS:
        # A training checkpoint records its backbone's order by prefix (RegNetCheckpointHook).
        recorded = meta.get('regnet_channel_order')
        order = meta.get('channel_order') or (
            recorded.get('backbone.') if isinstance(recorded, Mapping) else None)
        return check_channel_order(order or 'RGB', "the checkpoint's meta channel_order")
    return layout.channel_order


def channel_statistics(order: str) -> Tuple[List[float], List[float]]:
    """The ImageNet mean and std (0-255 scale) in ``order``."""
    if order == 'BGR':
        return list(RGB_MEAN[::-1]), list(RGB_STD[::-1])
    return list(RGB_MEAN), list(RGB_STD)


def _split_extensions(state_dict: Dict[str, torch.Tensor]):
    """(the RegNet's own tensors, the DCN-offset and plugin tensors) of a state dict in ours."""
    core = {k: v for k, v in state_dict.items() if not EXTENSION_KEY.match(k)}
    return core, {k: v for k, v in state_dict.items() if k not in core}


def convert(obj: Any, src: str = 'auto', check: bool = True,
            channel_order: Optional[str] = 'RGB') -> ConvertedCheckpoint:
    """Convert a loaded checkpoint (any supported layout) to ours, in memory.

    Args:
        obj: what ``read_checkpoint`` returned (a state dict or a wrapper dict).
        src: 'auto' to detect the layout, or 'pycls', 'torchvision', 'timm', 'mmdet',
            'regnet_backbone'.
        check: require exactly the tensors of the inferred architecture (stride 2 per stage);
            ``load_pretrained`` checks against the model instead. DCN offsets and plugins
            (mmdet's ``RegNet`` extensions) are kept and left to that check.
        channel_order: the colour order the returned first conv expects ('RGB', 'BGR'), or
            None for the file's native order.
    Raises ``UnknownFormatError``/``AmbiguousFormatError`` for names that fit no/several layouts
    and ``NotRegNetError`` for shapes that are not a RegNet.
    """
    state_dict, meta, dropped = extract_state_dict(obj)
    if src == 'auto':
        layout = detect_layout(state_dict)
    else:
        layout = get_layout(src)
        stray = unmatched_keys(layout, state_dict)
        if stray:
            try:
                guess = f'; they look like {detect_layout(state_dict).name} (try --src auto)'
            except UnknownFormatError:
                guess = ''
            raise UnknownFormatError(
                f'{len(stray)} of {len(state_dict)} tensor names are not part of the {layout.name} '
                f'layout (e.g. {", ".join(stray[:3])}){guess}.')
    wanted = check_channel_order(channel_order)
    native = native_order(layout, meta)
    ours: Dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if layout.is_head(key):
            dropped.append(key)
            continue
        name = layout.to_ours(key)
        if name in ours:
            raise UnknownFormatError(f'two tensors map to {name!r} (the second is {key!r}); the '
                                     f'checkpoint names a block twice, so it is not a valid '
                                     f'{layout.name} file.')
        ours[name] = tensor
    if _STEM_WEIGHT not in ours:
        raise NotRegNetError('the checkpoint has no stem conv; pass a full RegNet backbone.')
    order = wanted or native
    if order != native:
        _flip_first_conv(ours, _STEM_WEIGHT)
    architecture = infer_architecture(ours)
    filled = []
    if check:
        core, extensions = _split_extensions(ours)
        filled = check_tensors(core, expected_shapes(architecture),
                               f'the RegNet its shapes describe, {architecture.describe()}')
        ours = {**core, **extensions}
    return ConvertedCheckpoint(state_dict=ours, architecture=architecture,
                               source_format=layout.name, dropped=dropped, filled=filled,
                               source_meta=meta, channel_order=order, native_order=native)


def select_prefix(obj: Any, prefix: str) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint whose names start with ``prefix``, prefix removed.

    The semantics of mmengine's ``init_cfg=dict(type='Pretrained', prefix='backbone.')``, used
    to take a backbone out of a detector's or classifier's checkpoint.
    """
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in _WRAPPERS:
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        raise UnknownFormatError('found no state dict in the checkpoint; pass a model '
                                 'checkpoint.')
    keys = [k[len('module.'):] if k.startswith('module.') else k for k in obj]
    picked = {k[len(prefix):]: v for k, v in zip(keys, obj.values()) if k.startswith(prefix)}
    if not picked:
        raise UnknownFormatError(f'no tensor name starts with prefix {prefix!r} (e.g. '
                                 f'{", ".join(keys[:3])}); fix the prefix in init_cfg.')
    return picked


def load_checkpoint(path: str, src: str = 'auto', check: bool = True,
                    prefix: Optional[str] = None,
                    channel_order: Optional[str] = 'RGB') -> ConvertedCheckpoint:
    """Read ``path`` safely and convert it to our layout in memory (see ``convert``).

    ``prefix``: keep only the tensors under this name prefix first (``'backbone.'``).
    """
    obj = read_checkpoint(path)
    if prefix:
        meta = obj.get('meta') if isinstance(obj, Mapping) else None
        obj = select_prefix(obj, prefix)
        if isinstance(meta, Mapping):  # keep the file's own channel order with its tensors
            obj = {'state_dict': obj, 'meta': dict(meta)}
    return convert(obj, src=src, check=check, channel_order=channel_order)


def classifier_accuracy(obj: Any) -> Optional[dict]:
    """The last validation top-1 accuracy (percent) an mmengine Runner checkpoint of an
    mmpretrain classifier carries in its message hub, as ``{'top1': float, 'epoch': int,
    'iter': int}``; None when the checkpoint has none (not a Runner checkpoint, or never
    validated)."""
    hub = obj.get('message_hub') if isinstance(obj, dict) else None
    scalars = hub.get('log_scalars') if isinstance(hub, dict) else None
    buffer = scalars.get('val/accuracy/top1') if isinstance(scalars, dict) else None
    try:
        top1 = float(buffer.current())
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    found = {'top1': top1}
    runner_meta = obj.get('meta') if isinstance(obj.get('meta'), dict) else {}
    for key in ('epoch', 'iter'):
        if isinstance(runner_meta.get(key), int):
            found[key] = runner_meta[key]
    return found


def checkpoint_meta(converted: ConvertedCheckpoint, arch: Optional[str] = None,
                    source_sha256: Optional[str] = None,
                    source_file: Optional[str] = None) -> dict:
    """The ``meta`` dict written next to a converted state dict (JSON-friendly)."""
    return {
        'format_version': FORMAT_VERSION,
        'source_format': converted.source_format,
        'source_file': source_file,
        'source_sha256': source_sha256,
        'arch': arch if arch is not None else converted.arch,
        'spec': converted.architecture.to_meta(),
        'stem_channels': converted.architecture.stem_channels,
        'in_channels': converted.architecture.in_channels,
        'channel_order': converted.channel_order,
        'mean': channel_statistics(converted.channel_order)[0],
        'std': channel_statistics(converted.channel_order)[1],
        'dropped': list(converted.dropped),
        'converter': 'regnet_backbone.checkpoints',
    }


def check_arch(converted: ConvertedCheckpoint, arch: str) -> None:
    """Raise ``ArchitectureMismatchError`` unless preset ``arch`` is the checkpoint's network."""
    if arch not in PRESETS:
        raise ArchitectureMismatchError(f'unknown arch {arch!r}; use one of {", ".join(PRESETS)}.')
    wanted = Architecture(get_preset(arch).spec)
    if wanted != converted.architecture:
        raise ArchitectureMismatchError(
            f'--arch {arch} expects {wanted.describe()} but the checkpoint is '
            f'{converted.architecture.describe()}; drop --arch or pass '
            f'{converted.arch or "the matching arch"}.')


@dataclass
class ConversionReport:
    """What ``convert_file`` did, for the CLI summary."""
    output: str
    source_format: str
    target_format: str
    arch: Optional[str]
    architecture: Architecture
    num_tensors: int
    dropped: List[str]
    filled: List[str]
    nonfinite: List[str] = field(default_factory=list)


def export_state_dict(state_dict: Mapping[str, torch.Tensor], fmt: str,
                      channel_order: str = 'RGB') -> Dict[str, torch.Tensor]:
    """Rename a state dict in our layout, whose first conv expects ``channel_order``, to
    ``fmt``'s names (no classifier head) and ``fmt``'s native order.

    pycls and mmdet get a BGR first conv. mmdet's RegNet has no SE, so a RegNetY cannot be
    exported to it (``CheckpointError``).
    """
    layout = get_layout(fmt)
    channel_order = check_channel_order(channel_order)
    out = {}
    for key, tensor in state_dict.items():
        theirs = layout.from_ours(key)
        if theirs is None:
            raise CheckpointError(f'{layout.name} has no tensor for our {key!r} (its RegNet has no '
                                  f'SE), so this network cannot be exported to {layout.name}; '
                                  f'export to pycls, torchvision or timm.')
        out[theirs] = tensor
    if layout.channel_order != channel_order:
        _flip_first_conv(out, layout.from_ours(_STEM_WEIGHT))
    return out


def export_checkpoint(converted: ConvertedCheckpoint, fmt: str, meta: Optional[dict] = None) -> Any:
    """The object to save for ``fmt``, wrapped the way that code base's own files are."""
    layout = get_layout(fmt)
    if layout.name == OURS:
        return {'state_dict': dict(converted.state_dict), 'meta': meta or {}}
    state_dict = export_state_dict(converted.state_dict, fmt, converted.channel_order)
    if layout.wrapper == 'state_dict':
        return {'state_dict': state_dict, 'meta': {'exported_by': 'regnet_backbone',
                                                   'channel_order': layout.channel_order}}
    if layout.wrapper:
        return {layout.wrapper: state_dict}
    return state_dict


def _check_output(output_path: str, force: bool) -> None:
    """Fail before a (possibly long) read when the output cannot be written."""
    if os.path.lexists(output_path) and not force:
        raise OutputExistsError(f'{output_path} already exists; pass --force (force=True) to '
                                f'overwrite it or choose another output path.')
    try:
        resolve_output(output_path)  # a FIFO or a device is refused before the read
    except NotARegularFileError as error:
        raise CheckpointError(str(error)) from None


def convert_file(input_path: str, output_path: str, src: str = 'auto', arch: Optional[str] = None,
                 force: bool = False, to: str = OURS,
                 channel_order: str = 'RGB') -> ConversionReport:
    """Convert the checkpoint at ``input_path`` and write it atomically to ``output_path``.

    With ``to='regnet_backbone'`` (default) the output is
    ``{'state_dict': ..., 'meta': {'source_format', 'source_sha256', 'arch', 'spec',
    'channel_order', 'mean', 'std', ...}}`` with the first conv in ``channel_order`` (RGB by
    default; 'BGR' keeps pycls's and mmdet's order); other ``to`` values export to that
    layout, in its native order.
    ``arch`` (a preset name) must describe the checkpoint. Nothing is written on any error.
    Runner checkpoints (an mmdet / mmseg / mmpretrain model trained with this backbone, or with
    mmdet's ``RegNet``) are read with the same allow-list as ``--resume`` and give their
    backbone. ``report.nonfinite`` names tensors holding NaN or Inf (written anyway).
    The output path follows :mod:`regnet_backbone.atomic`'s policy: a symlink is written
    through, a folder, FIFO or device is refused; a missing output folder is created.
    """
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    _check_output(output_path, force)  # write_atomic checks again
    channel_order = check_channel_order(channel_order)
    layout = get_layout(to)
    if to != OURS and output_path.endswith('.safetensors') and layout.wrapper:
        raise CheckpointError(f'{to} files are pickles ({layout.wrapper!r} wrapper); use '
                              f'a .pth output path.')
    obj = read_checkpoint(input_path)
    accuracy = classifier_accuracy(obj)
    converted = convert(obj, src=src, channel_order=channel_order)
    if arch is not None:
        check_arch(converted, arch)
    meta = checkpoint_meta(converted, arch=arch, source_sha256=file_sha256(input_path),
                           source_file=os.path.basename(input_path))
    if accuracy is not None:
        meta['classifier_accuracy'] = accuracy  # mmpretrain's last validation, in percent
    write_atomic(export_checkpoint(converted, to, meta), output_path, force=force)
    return ConversionReport(output=output_path, source_format=converted.source_format,
                            target_format=to, arch=meta['arch'],
                            architecture=converted.architecture,
                            num_tensors=len(converted.state_dict), dropped=converted.dropped,
                            filled=converted.filled,
                            nonfinite=nonfinite_tensors(converted.state_dict))


@dataclass
class PartialLoad:
    """What a deliberate partial load (``strict=False``) left out."""
    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    wrong_shape: List[str]


def load_pretrained(model: torch.nn.Module, path: str, src: str = 'auto',
                    prefix: Optional[str] = None, strict: bool = True,
                    channel_order: Optional[str] = None) -> ConvertedCheckpoint:
    """Load any supported RegNet checkpoint into ``model`` (a ``RegNetBackbone``).

    Unconverted files (pycls, torchvision, timm, mmdet) are converted in memory; ``prefix``
    (``'backbone.'``) first keeps only the tensors under that prefix, as mmengine's
    ``Pretrained`` init does. The first conv is put in ``channel_order``, else in the model's
    declared ``in_channel_order``, else left in the file's native order; the order the loaded
    weights expect is recorded as ``model.weights_channel_order``. Strict by default: the checkpoint's architecture must equal the
    model's (else ``ArchitectureMismatchError`` giving both sets of depths and widths) and every
    tensor must be present with the model's shape; no tensor is copied otherwise.

    ``strict=False`` is the explicit opt-in for partial loading: the tensors whose name and
    shape match are copied, the rest keep their values, and ``converted.partial`` (a
    :class:`PartialLoad`) says what was left out. Returns what was loaded.
    """
    order = check_channel_order(channel_order) or getattr(model, 'in_channel_order', None)
    converted = load_checkpoint(path, src=src, check=False, prefix=prefix, channel_order=order)
    target = model.state_dict()
    if not strict:
        state = converted.state_dict
        shapes = {k: tuple(v.shape) for k, v in target.items()}
        fits = {k: v for k, v in state.items() if shapes.get(k) == tuple(v.shape)}
        converted.partial = PartialLoad(
            loaded=sorted(fits), missing=[k for k in target if k not in state],
            unexpected=[k for k in state if k not in target],
            wrong_shape=[k for k in state if k in shapes and k not in fits])
        model.load_state_dict(fits, strict=False)
        _record_order(model, converted)
        return converted
    try:
        expected = infer_architecture(target)
    except NotRegNetError:
        expected = None
    if expected is not None and expected != converted.architecture:
        fix = (f"build the model with arch='{converted.arch}'" if converted.arch else
               "build the model with the checkpoint's spec as arch")
        raise ArchitectureMismatchError(
            f'{path} holds {converted.architecture.describe()} but the model is '
            f'{expected.describe()}; {fix}.')
    try:
        converted.filled = check_tensors(converted.state_dict,
                                         {k: tuple(v.shape) for k, v in target.items()},
                                         'this model',
                                         'the model was built with other layers (norm_cfg, '
                                         'conv_cfg) than the checkpoint holds')
    except NotRegNetError as error:
        raise ArchitectureMismatchError(f'{path}: {error}') from None
    model.load_state_dict(converted.state_dict, strict=True)
    _record_order(model, converted)
    return converted


def _record_order(model: torch.nn.Module, converted: ConvertedCheckpoint) -> None:
    if converted.architecture.in_channels == 3:
        model.weights_channel_order = converted.channel_order
