"""Conv and norm builders that honour OpenMMLab's ``conv_cfg`` / ``norm_cfg``.

The common types (plain conv; BN, SyncBN, GN, IN) are built here so that the backbone needs only
torch and mmengine. Any other registered type (DCN, custom norms) is handed to mmcv's
``build_conv_layer`` / ``build_norm_layer`` when it is installed.

Why not mmcv's builders for everything: mmcv's ops have no wheel for torch 2.14 (it builds from
source, ~20 minutes), so a bare GPU machine (the GPU check) or an ONNX export environment has
mmengine but no mmcv; the backbone must still build there.
"""
from typing import Optional

import torch.nn as nn

_NORM_LAYERS = {
    'BN': nn.BatchNorm2d,
    'BN2d': nn.BatchNorm2d,
    'SyncBN': nn.SyncBatchNorm,
    'GN': nn.GroupNorm,
    'IN': nn.InstanceNorm2d,
    'IN2d': nn.InstanceNorm2d,
}


def build_norm(norm_cfg: dict, channels: int) -> nn.Module:
    """Build the norm layer described by ``norm_cfg`` for ``channels`` channels."""
    if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
        raise ValueError(f"norm_cfg must be a dict with a 'type' key, got {norm_cfg!r}.")
    cfg = dict(norm_cfg)
    layer_type = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if layer_type == 'GN':
        if 'num_groups' not in cfg:
            raise ValueError("norm_cfg of type 'GN' needs 'num_groups'.")
        layer = nn.GroupNorm(num_channels=channels, **cfg)
    elif layer_type in _NORM_LAYERS:
        layer = _NORM_LAYERS[layer_type](channels, **cfg)
    else:
        try:
            from mmcv.cnn import build_norm_layer
        except ImportError:
            raise ValueError(f'norm type {layer_type!r} needs mmcv; the built-in types are '
                             f'{sorted(_NORM_LAYERS)}.') from None
        layer = build_norm_layer(norm_cfg, channels)[1]
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return layer


def build_conv(conv_cfg: Optional[dict], in_channels: int, out_channels: int, kernel_size: int,
               stride: int = 1, dilation: int = 1, groups: int = 1, bias: bool = False) -> nn.Module:
    """Build a 'same'-padded conv (padding = dilation * (k // 2)) described by ``conv_cfg``."""
    padding = dilation * (kernel_size // 2)
    if conv_cfg is None or conv_cfg.get('type') in ('Conv', 'Conv2d'):
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
    try:
        from mmcv.cnn import build_conv_layer
    except ImportError:
        raise ValueError(f'conv type {conv_cfg.get("type")!r} needs mmcv; without it only '
                         "'Conv2d' is available.") from None
    return build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size, stride=stride,
                            padding=padding, dilation=dilation, groups=groups, bias=bias)
