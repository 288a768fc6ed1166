"""Loading a checkpoint into a ``RegNetBackbone``: strict by default (same architecture, every
tensor present with the model's shape), partial only when asked (``strict=False``), with the
first conv put in the order the model declares. Used by the ``RegNetPretrained`` initializer.
"""
from typing import Optional

import torch

from .architecture import infer_architecture
from .convert import (ConvertedCheckpoint, PartialLoad, check_channel_order, check_tensors,
                      load_checkpoint)
from .errors import ArchitectureMismatchError, NotRegNetError


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
