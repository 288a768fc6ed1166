"""mmengine hooks of this package, one a file, registered in mmengine's root ``HOOKS`` (which
mmdet's, mmseg's and mmpretrain's registries fall back to).

* :class:`AtomicCheckpointHook` (``atomic_checkpoint.py``): mmengine's ``CheckpointHook`` with
  crash-safe writes; our tools swap it in (:func:`.atomic_checkpoint.use_atomic_checkpoints`).
* :class:`RegNetCheckpointHook` (``checkpoint_names.py``): whole-model checkpoints in mmdet's
  ``RegNet`` names load into models built on ``RegNetBackbone``; training checkpoints record the
  channel order of their backbones.
* :class:`ChannelOrderCheckHook` (``channel_order.py``): refuse a run whose data preprocessor
  feeds the backbone the other colour order than its weights expect.

Our tools add both to every run (:func:`use_regnet_hooks`). Stock ``mmdet/tools/train.py`` users
add them with ``custom_hooks=[dict(type='RegNetCheckpointHook'),
dict(type='ChannelOrderCheckHook')]`` (our configs do).
"""
from .atomic_checkpoint import AtomicCheckpointHook
from .channel_order import ChannelOrderCheckHook, ChannelOrderError, preprocessor_order
from .checkpoint_names import RegNetCheckpointHook, regnet_backbones

#: The hooks every run of our tools gets, by registered name.
REGNET_HOOKS = ('RegNetCheckpointHook', 'ChannelOrderCheckHook')


def use_regnet_hooks(cfg) -> None:
    """Add :data:`REGNET_HOOKS` to ``cfg.custom_hooks`` where the config lacks them."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {h.get('type') for h in hooks if isinstance(h, dict)}
    hooks += [dict(type=name) for name in REGNET_HOOKS if name not in present]
    cfg.custom_hooks = hooks


__all__ = ['AtomicCheckpointHook', 'ChannelOrderCheckHook', 'ChannelOrderError', 'RegNetCheckpointHook', 'REGNET_HOOKS',
           'preprocessor_order', 'regnet_backbones', 'use_regnet_hooks']
