"""Pretrained weights into a ``RegNetBackbone``: :func:`load_pretrained`, strict by default (same
architecture, every tensor present with the model's shape), partial only when asked
(``strict=False``), with the first conv put in the order the model declares; and
``RegNetPretrained``, mmengine's ``Pretrained`` weight initializer made strict and converting.

``RegNetPretrained`` is registered in mmengine's ``WEIGHT_INITIALIZERS``, so
``init_cfg=dict(type='RegNetPretrained', checkpoint=PATH)`` works on any module;
``RegNetBackbone`` turns its ``type='Pretrained'`` entries into this one.
"""
import logging
from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from .architecture import infer_architecture
from .convert import ConvertedCheckpoint, check_tensors, parse_channel_order, read_converted
from .errors import ArchitectureMismatchError, NotRegNetError
from .state_dict import compare, shapes

NAME = 'RegNetPretrained'


def load_pretrained(model: torch.nn.Module, path: str, src: str = 'auto',
                    prefix: Optional[str] = None, strict: bool = True,
                    channel_order: Optional[str] = None) -> ConvertedCheckpoint:
    """Load any supported RegNet checkpoint into ``model`` (a ``RegNetBackbone``).

    Unconverted files (pycls, torchvision, timm, mmdet) are converted in memory; ``prefix``
    (``'backbone.'``) first keeps only the tensors under that prefix, as mmengine's
    ``Pretrained`` init does. The first conv is put in ``channel_order``, else in the model's
    declared ``in_channel_order``, else left in the file's native order; the order the loaded
    weights expect is recorded as ``model.weights_channel_order``. Strict by default: the
    checkpoint's architecture must equal the model's (else ``ArchitectureMismatchError`` giving
    both sets of depths and widths) and every tensor must be present with the model's shape; no
    tensor is copied otherwise.

    ``strict=False`` is the explicit opt-in for partial loading: the tensors whose name and
    shape match are copied, the rest keep their values, and ``converted.partial`` (a
    :class:`~.state_dict.Mismatch`) says what was left out. Returns what was loaded.
    """
    order = parse_channel_order(channel_order) or getattr(model, 'in_channel_order', None)
    converted = read_converted(path, src=src, check=False, prefix=prefix, channel_order=order)
    current = model.state_dict()
    target = shapes(current)
    if not strict:
        state = converted.state_dict
        converted.partial = compare(shapes(state), target)
        model.load_state_dict({k: v for k, v in state.items()
                               if target.get(k) == tuple(v.shape)}, strict=False)
        _record_order(model, converted)
        return converted
    try:
        expected = infer_architecture(current)
    except NotRegNetError:
        expected = None
    if expected is not None and expected != converted.architecture:
        fix = (f"build the model with arch='{converted.arch}'" if converted.arch else
               "build the model with the checkpoint's spec as arch")
        raise ArchitectureMismatchError(
            f'{path} holds {converted.architecture.describe()} but the model is '
            f'{expected.describe()}; {fix}.')
    try:
        converted.filled = check_tensors(converted.state_dict, target, 'this model',
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


@WEIGHT_INITIALIZERS.register_module(name=NAME)
class RegNetPretrainedInit:
    """Load a RegNet checkpoint into a ``RegNetBackbone`` with :func:`load_pretrained`.

    Args:
        checkpoint: the file (any supported format; see ``docs/pretrained.md``).
        prefix: keep only the tensors under this prefix first (``'backbone.'`` of a detector).
        strict: refuse (``CheckpointError``) unless every tensor fits; False loads what fits
            and logs what was left out.
        channel_order: the order the first conv must expect ('RGB', 'BGR'); None: the
            module's ``in_channel_order``, else the file's own order.
        map_location: accepted for ``Pretrained`` compatibility; files are read on the CPU.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None, strict: bool = True,
                 channel_order: Optional[str] = None, map_location: str = 'cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.strict = strict
        self.channel_order = channel_order
        self.map_location = map_location

    def __call__(self, module) -> None:
        converted = load_pretrained(module, self.checkpoint, prefix=self.prefix,
                                    strict=self.strict, channel_order=self.channel_order)
        if converted.partial:
            print_log(f'{type(module).__name__}: partial load (strict=False) from '
                      f'{self.checkpoint}: {converted.partial.summary()}', logger='current',
                      level=logging.WARNING)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{NAME}: load from {self.checkpoint}'
