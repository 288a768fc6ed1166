"""Folding BatchNorm into the preceding conv for inference (deploy mode)."""
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """Return a conv with bias computing ``bn(conv(x))`` in eval mode.

    W' = W * gamma / sqrt(var + eps) (per output channel), b' = beta + (b - mean) * gamma / sqrt(var + eps).
    """
    if not isinstance(bn, _BatchNorm) or not bn.track_running_stats:
        raise TypeError(f'deploy mode folds BatchNorm only; found {type(bn).__name__}. '
                        'Build the model with norm_cfg=dict(type="BN") (or SyncBN) to fuse it.')
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.affine:
        scale = scale * bn.weight
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    shift = (bias - bn.running_mean) * scale
    fused.bias.copy_(shift + bn.bias if bn.affine else shift)
    fused.weight = nn.Parameter(fused.weight.contiguous(memory_format=_memory_format(conv.weight)))
    return fused


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def fuse_module_pairs(module: nn.Module, pairs) -> None:
    """Fold ``module.<norm>`` into ``module.<conv>`` for each (conv, norm) attribute pair."""
    for conv_name, norm_name in pairs:
        conv, norm = getattr(module, conv_name), getattr(module, norm_name)
        if isinstance(norm, nn.Identity):
            continue  # already fused
        setattr(module, conv_name, fuse_conv_bn(conv, norm))
        setattr(module, norm_name, nn.Identity())
