"""``RegNetCheckpointHook``: whole-model checkpoints in mmdet's ``RegNet`` names load into the
same model built on ``RegNetBackbone``, and training checkpoints record their backbones'
channel order.

It works at mmengine's own extension points: ``after_load_checkpoint`` (called by
``Runner.load_checkpoint`` for ``load_from``, ``--resume`` and tools/test.py, before the tensors
reach the model) renames the backbone tensors in place, and ``before_save_checkpoint`` writes
``meta['regnet_channel_order']``. Neck and head tensors are never touched.
"""
import logging
from typing import Dict

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...checkpoints.errors import UnknownFormatError
from ...checkpoints.io import allow_runner_checkpoints
from ...checkpoints.model import trained_channel_order, translate_model_state_dict
from ...checkpoints.state_dict import find_state_dict, strip_wrapper_prefix
from ...models import RegNetBackbone


def regnet_backbones(model) -> Dict[str, RegNetBackbone]:
    """``{prefix: module}`` for every ``RegNetBackbone`` in ``model`` (``'backbone.'``)."""
    if is_model_wrapper(model):
        model = model.module
    return {(name + '.' if name else ''): m for name, m in model.named_modules()
            if isinstance(m, RegNetBackbone)}


@HOOKS.register_module()
class RegNetCheckpointHook(Hook):
    """Translate mmdet-``RegNet`` backbone names on load; record channel orders on save.

    On load, a backbone whose file order is known (recorded by a training run of ours, or the
    ``bgr_to_rgb`` / ``to_rgb`` of the config text the file carries) and differs from a declared
    ``in_channel_order`` gets its first conv converted; otherwise the backbone learns the file's
    order (``weights_channel_order``, None when unknown), which :class:`ChannelOrderCheckHook`
    then checks.
    """
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Runner checkpoints load where mmengine's own ``torch.load`` reads them (``--resume``,
        ``load_from``, the stock ``tools/test.py``): on torch >= 2.6 its weights-only default
        needs the allow-list of what the Runner saves. mmengine calls this before it loads."""
        allow_runner_checkpoints()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        backbones = regnet_backbones(runner.model)
        if not backbones:
            return
        try:
            holder = find_state_dict(checkpoint)  # edited in place: the Runner loads from it
        except UnknownFormatError:
            return  # the Runner's strict loading refuses it in one line
        meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
        recorded = meta.get('regnet_channel_order')
        if not isinstance(recorded, dict):  # else: what its training config fed, if it says
            trained = trained_channel_order(meta)
            recorded = {p: trained for p in backbones}
        translated, found = translate_model_state_dict(
            strip_wrapper_prefix(holder), prefixes=backbones,
            channel_orders={p: m.in_channel_order for p, m in backbones.items()},
            file_orders=recorded)
        for part in found:
            # These weights replace whatever init_cfg loaded; their order may be unknown.
            backbones[part.prefix].weights_channel_order = part.channel_order
            if part.renamed:
                print_log(f'RegNetCheckpointHook: {part.renamed} tensors under {part.prefix!r} '
                          f'renamed from mmdet\'s RegNet names to RegNetBackbone\'s '
                          f'(first conv: {part.channel_order})', logger='current',
                          level=logging.INFO)
        holder.clear()
        holder.update(translated)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        orders = {p: m.expected_channel_order for p, m in regnet_backbones(runner.model).items()
                  if m.expected_channel_order is not None}
        if orders:
            checkpoint.setdefault('meta', {})['regnet_channel_order'] = orders
