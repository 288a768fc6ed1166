"""OpenMMLab registration, kept thin: each module registers itself where it is defined, with
mmengine's ``register_module`` decorators; importing this module imports them all.

The backbone goes into mmengine's root ``MODELS`` registry. mmdet's, mmseg's and mmpretrain's
``MODELS`` are children of it and fall back to their parent for names they lack, so
``type='RegNetBackbone'`` builds in all of them without importing them here and without clashing
with mmdet's own ``RegNet``. Importing this module also registers this package's hooks
(:mod:`regnet_backbone.runtime.hooks`) in mmengine's root ``HOOKS``, and the checkpoints layer
registers the ``RegNetPretrained`` weight initializer.
"""
from mmengine.registry import MODELS

from ..models import RegNetBackbone
from . import hooks  # noqa: F401  (registers RegNetCheckpointHook, ChannelOrderCheckHook)

NAME = 'RegNetBackbone'


def register_modules() -> None:
    """Make sure ``RegNetBackbone`` is registered (importing ``regnet_backbone`` does this, through
    the decorator on the class; kept for callers of the former imperative registration)."""
    if MODELS.get(NAME) is None:
        MODELS.register_module(name=NAME, module=RegNetBackbone)
