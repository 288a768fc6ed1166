"""Converted checkpoint files: :func:`convert_file` reads a checkpoint, converts it with
:func:`~.convert.convert` and writes it atomically, with the ``meta`` that records where it came
from (source format and sha256, architecture, channel order and its statistics); the export
direction (ours -> pycls / torchvision / timm / mmdet names and native order) lives here too.
"""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import torch

from ..atomic import NotARegularFileError, resolve_output
from ..design.presets import PRESETS, get_preset
from .architecture import Architecture
from .convert import (FORMAT_VERSION, STEM_WEIGHT, ConvertedCheckpoint, channel_statistics,
                      convert, flip_first_conv, parse_channel_order)
from .errors import ArchitectureMismatchError, CheckpointError, OutputExistsError
from .formats import OURS, get_layout
from .io import file_sha256, nonfinite_tensors, read_checkpoint, write_atomic
from .remote import fetch


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
    channel_order = parse_channel_order(channel_order)
    out = {}
    for key, tensor in state_dict.items():
        theirs = layout.from_ours(key)
        if theirs is None:
            raise CheckpointError(f'{layout.name} has no tensor for our {key!r} (its RegNet has no '
                                  f'SE), so this network cannot be exported to {layout.name}; '
                                  f'export to pycls, torchvision or timm.')
        out[theirs] = tensor
    if layout.channel_order != channel_order:
        flip_first_conv(out, layout.from_ours(STEM_WEIGHT))
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


def check_output(output_path: str, force: bool) -> None:
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
    check_output(output_path, force)  # write_atomic checks again
    channel_order = parse_channel_order(channel_order)
    layout = get_layout(to)
    if to != OURS and output_path.endswith('.safetensors') and layout.wrapper:
        raise CheckpointError(f'{to} files are pickles ({layout.wrapper!r} wrapper); use '
                              f'a .pth output path.')
    input_path = fetch(input_path)  # a model-zoo name or URL: its file in torch.hub's cache
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
