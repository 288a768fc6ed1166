"""``ChannelOrderCheckHook``: the data preprocessor must feed each ``RegNetBackbone`` the colour
order its first conv expects.

mmcv loads images as BGR; a data preprocessor with ``bgr_to_rgb=True`` (mmdet, mmseg) or
``to_rgb=True`` (mmpretrain) feeds RGB, else BGR. The backbone's order is its declared
``in_channel_order``, else the order of the weights loaded into it. A mismatch (or an ImageNet
mean given in the other order than the one fed) cannot be right; the hook stops the run before
its first iteration with one line naming both fixes, in training, validation and testing.
"""
from typing import Optional, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...checkpoints import RGB_MEAN, CheckpointError
from .checkpoint_names import regnet_backbones

#: Tolerance when recognising the ImageNet mean in a preprocessor (0-255 scale).
_MEAN_TOLERANCE = 1e-3


class ChannelOrderError(CheckpointError):
    """The data preprocessor feeds a backbone the other colour order than its weights expect."""


def preprocessor_order(preprocessor) -> Tuple[Optional[str], str]:
    """(the order ``preprocessor`` feeds, 'RGB' / 'BGR' / None when it cannot be told, and
    the name of its conversion flag in configs)."""
    flag = 'to_rgb' if 'mmpretrain' in type(preprocessor).__module__ else 'bgr_to_rgb'
    conversion = getattr(preprocessor, '_channel_conversion', None)
    if conversion is None:
        return None, flag
    return ('RGB' if conversion else 'BGR'), flag


def _mean_order(preprocessor) -> Optional[str]:
    mean = getattr(preprocessor, 'mean', None)
    if mean is None or mean.numel() != 3:
        return None
    values = [float(v) for v in mean.flatten()]
    for order, reference in (('RGB', RGB_MEAN), ('BGR', RGB_MEAN[::-1])):
        if all(abs(a - b) < _MEAN_TOLERANCE for a, b in zip(values, reference)):
            return order
    return None


def check_channel_order(model) -> None:
    """Raise :class:`ChannelOrderError` when ``model``'s data preprocessor and one of its
    ``RegNetBackbone`` s disagree on the colour order; do nothing when either is unknown."""
    base = model.module if is_model_wrapper(model) else model
    backbones = regnet_backbones(base)
    preprocessor = getattr(base, 'data_preprocessor', None)
    if preprocessor is None or not backbones:
        return
    feeds, flag = preprocessor_order(preprocessor)
    if feeds is None:
        return
    mean = _mean_order(preprocessor)
    if mean is not None and mean != feeds:
        raise ChannelOrderError(
            f'model.data_preprocessor feeds {feeds} ({flag}={feeds == "RGB"}) but its mean is '
            f'the ImageNet mean in {mean} order; give mean and std in {feeds} order, or set '
            f'{flag}={mean == "RGB"}.')
    for prefix, backbone in backbones.items():
        expected = backbone.expected_channel_order
        if expected is None or expected == feeds:
            continue
        why = ('declared by in_channel_order' if backbone.in_channel_order else
               'the order of the weights it loaded')
        where = f'model.{prefix}' if prefix else 'model.'
        raise ChannelOrderError(
            f'{where.rstrip(".")} expects {expected} input ({why}) but model.data_preprocessor '
            f'feeds {feeds} ({flag}={feeds == "RGB"}); set {where}in_channel_order=\'{feeds}\' '
            f'to convert the weights to it, or feed {expected} ({flag}={expected == "RGB"}, '
            f'mean and std in {expected} order).')


@HOOKS.register_module()
class ChannelOrderCheckHook(Hook):
    """Run :func:`check_channel_order` before training, validation and testing (after the
    weights are loaded, so the backbone knows their order)."""
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_channel_order(runner.model)

    def before_val(self, runner) -> None:
        check_channel_order(runner.model)

    def before_test(self, runner) -> None:
        check_channel_order(runner.model)
