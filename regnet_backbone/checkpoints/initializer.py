"""``RegNetPretrained``: mmengine's ``Pretrained`` weight initializer, strict and converting.

Registered in mmengine's ``WEIGHT_INITIALIZERS``, so ``init_cfg=dict(type='RegNetPretrained',
checkpoint=PATH)`` works on any module; ``RegNetBackbone`` turns its ``type='Pretrained'``
entries into this one. Unlike ``Pretrained`` it converts pycls, torchvision, timm and mmdet files
on the fly, loads strictly unless ``strict=False``, and delivers the first conv in the channel
order the module declares (see :func:`regnet_backbone.checkpoints.load_pretrained`).
"""
import logging
from typing import Optional

from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from .loading import load_pretrained

NAME = 'RegNetPretrained'


@WEIGHT_INITIALIZERS.register_module(name=NAME)
class RegNetPretrainedInit:
    """Load a RegNet checkpoint into a ``RegNetBackbone``.

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
        if converted.partial is not None:
            part = converted.partial
            print_log(f'{type(module).__name__}: partial load (strict=False) from '
                      f'{self.checkpoint}: {len(part.loaded)} tensors loaded, '
                      f'{len(part.missing)} missing, {len(part.unexpected)} unexpected, '
                      f'{len(part.wrong_shape)} of another shape', logger='current',
                      level=logging.WARNING)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{NAME}: load from {self.checkpoint}'

