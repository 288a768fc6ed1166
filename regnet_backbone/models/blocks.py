"""The modules of an AnyNetX network: stem, Squeeze-and-Excitation, X block.

Parameter names are the checkpoint format written by ``tools/convert_pretrained.py``:

    stem.conv.weight, stem.norm.*
    layer{i}.{j}.conv1.weight, .norm1.*        1x1 conv to the bottleneck width
    layer{i}.{j}.conv2.weight, .norm2.*        3x3 group conv (carries the stage's stride)
    layer{i}.{j}.se.fc1.{weight,bias}, .se.fc2.{weight,bias}     RegNetY only
    layer{i}.{j}.conv3.weight, .norm3.*        1x1 conv to the stage width
    layer{i}.{j}.downsample.conv.weight, .downsample.norm.*     when width or stride changes
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from .fusion import fuse_module_pairs
from .layers import build_conv, build_norm


class Stem(nn.Module):
    """3x3 conv with stride 2, norm, ReLU: (N, C_in, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""

    def __init__(self, in_channels: int, out_channels: int, conv_cfg: Optional[dict],
                 norm_cfg: dict):
        super().__init__()
        self.conv = build_conv(conv_cfg, in_channels, out_channels, 3, stride=2)
        self.norm = build_norm(norm_cfg, out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    def fuse(self) -> None:
        fuse_module_pairs(self, [('conv', 'norm')])


class SqueezeExcitation(nn.Module):
    """Channel gate of RegNetY: global average pool, 1x1 conv to ``se_channels``, ReLU,
    1x1 conv back, sigmoid, multiply. Unlike SENet, ``se_channels`` is a fraction of the
    *block input* width, not of the gated (bottleneck) width."""

    def __init__(self, channels: int, se_channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, se_channels, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(se_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = torch.sigmoid(self.fc2(self.act(self.fc1(scale))))
        return x * scale


class Downsample(nn.Module):
    """Projection shortcut: 1x1 conv with the block's stride, then norm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 conv_cfg: Optional[dict], norm_cfg: dict):
        super().__init__()
        self.conv = build_conv(conv_cfg, in_channels, out_channels, 1, stride=stride)
        self.norm = build_norm(norm_cfg, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))

    def fuse(self) -> None:
        fuse_module_pairs(self, [('conv', 'norm')])


class XBlock(nn.Module):
    """The X block: a ResNeXt bottleneck where the 3x3 conv carries the stride and the group
    width (not the group count) is fixed; optional SE after the 3x3 (RegNetY).

    Unlike ResNet's bottleneck there is no 4x expansion: the bottleneck width is
    ``out_channels * bottleneck_ratio`` and RegNet uses ratio 1.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, bottleneck_width: int,
                 group_width: int, stride: int = 1, dilation: int = 1, se_channels: int = 0,
                 conv_cfg: Optional[dict] = None, norm_cfg: Optional[dict] = None,
                 with_cp: bool = False):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        w_b = bottleneck_width
        self.with_cp = with_cp
        self.conv1 = build_conv(conv_cfg, in_channels, w_b, 1)
        self.norm1 = build_norm(norm_cfg, w_b)
        self.conv2 = build_conv(conv_cfg, w_b, w_b, 3, stride=stride, dilation=dilation,
                                groups=w_b // group_width)
        self.norm2 = build_norm(norm_cfg, w_b)
        self.se = SqueezeExcitation(w_b, se_channels) if se_channels else None
        self.conv3 = build_conv(conv_cfg, w_b, out_channels, 1)
        self.norm3 = build_norm(norm_cfg, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.downsample = None
        if in_channels != out_channels or stride != 1:
            self.downsample = Downsample(in_channels, out_channels, stride, conv_cfg, norm_cfg)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.act(self.norm2(self.conv2(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.norm3(self.conv3(out))
        # In place: saves one full-size allocation per block (neither conv nor BN backward
        # needs this tensor).
        out += x if self.downsample is None else self.downsample(x)
        return out

    def fuse(self) -> None:
        fuse_module_pairs(self, [('conv1', 'norm1'), ('conv2', 'norm2'), ('conv3', 'norm3')])
        if self.downsample is not None:
            self.downsample.fuse()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            # Recompute the block in backward: activations inside it are not kept.
            out = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.act(out)
