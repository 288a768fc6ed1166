"""The modules of an AnyNetX network: stem, Squeeze-and-Excitation, X block.

Parameter names are the checkpoint format written by ``tools/convert_pretrained.py``:

    stem.conv.weight, stem.norm.*
    layer{i}.{j}.conv1.weight, .norm1.*        1x1 conv to the bottleneck width
    layer{i}.{j}.conv2.weight, .norm2.*        3x3 group conv (carries the stage's stride)
    layer{i}.{j}.se.fc1.{weight,bias}, .se.fc2.{weight,bias}     RegNetY only
    layer{i}.{j}.conv3.weight, .norm3.*        1x1 conv to the stage width
    layer{i}.{j}.downsample.conv.weight, .downsample.norm.*     when width or stride changes
    layer{i}.{j}.conv2.conv_offset.*           with ``dcn`` (mmcv's deformable conv)
    layer{i}.{j}.context_block.* (etc.)        with ``plugins``, named by mmcv's
                                               ``build_plugin_layer`` as mmdet names them
"""
from typing import List, Optional, Sequence

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


#: Where mmdet's ResNet plugins may sit in a block.
PLUGIN_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


class XBlock(nn.Module):
    """The X block: a ResNeXt bottleneck where the 3x3 conv carries the stride and the group
    width (not the group count) is fixed; optional SE after the 3x3 (RegNetY).

    Unlike ResNet's bottleneck there is no 4x expansion: the bottleneck width is
    ``out_channels * bottleneck_ratio`` and RegNet uses ratio 1.
    ``dcn`` (an mmcv conv config, e.g. ``dict(type='DCNv2', deform_groups=1)``) makes the 3x3
    group conv deformable, and ``plugins`` (``[dict(cfg=..., position='after_conv2'), ...]``)
    insert mmcv plugin layers, both where mmdet's ``RegNet`` (a ResNet bottleneck) puts them.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, bottleneck_width: int,
                 group_width: int, stride: int = 1, dilation: int = 1, se_channels: int = 0,
                 conv_cfg: Optional[dict] = None, norm_cfg: Optional[dict] = None,
                 with_cp: bool = False, dcn: Optional[dict] = None,
                 plugins: Optional[Sequence[dict]] = None):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        w_b = bottleneck_width
        self.with_cp = with_cp
        self.conv1 = build_conv(conv_cfg, in_channels, w_b, 1)
        self.norm1 = build_norm(norm_cfg, w_b)
        self.conv2 = build_conv(dcn if dcn is not None else conv_cfg, w_b, w_b, 3, stride=stride,
                                dilation=dilation, groups=w_b // group_width)
        self.norm2 = build_norm(norm_cfg, w_b)
        self.se = SqueezeExcitation(w_b, se_channels) if se_channels else None
        self.conv3 = build_conv(conv_cfg, w_b, out_channels, 1)
        self.norm3 = build_norm(norm_cfg, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.downsample = None
        if in_channels != out_channels or stride != 1:
            self.downsample = Downsample(in_channels, out_channels, stride, conv_cfg, norm_cfg)
        self.plugin_names = {position: [] for position in PLUGIN_POSITIONS}
        for plugin in plugins or ():
            channels = out_channels if plugin['position'] == 'after_conv3' else w_b
            self.plugin_names[plugin['position']].append(self._add_plugin(plugin['cfg'],
                                                                          channels))

    def _add_plugin(self, cfg: dict, channels: int) -> str:
        from mmcv.cnn import build_plugin_layer
        cfg = dict(cfg)
        name, layer = build_plugin_layer(cfg, in_channels=channels,
                                         postfix=cfg.pop('postfix', ''))
        if hasattr(self, name):
            raise ValueError(f'plugin {name!r} appears twice in a block; give each plugin of '
                             f'the same type its own postfix.')
        self.add_module(name, layer)
        return name

    def plugins(self) -> List[nn.Module]:
        """The plugin layers of this block, in the order they run."""
        return [getattr(self, n) for p in PLUGIN_POSITIONS for n in self.plugin_names[p]]

    def _plugins_at(self, position: str, x: torch.Tensor) -> torch.Tensor:
        for name in self.plugin_names[position]:
            x = getattr(self, name)(x)
        return x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self._plugins_at('after_conv1', out)
        out = self.act(self.norm2(self.conv2(out)))
        # SE is part of the RegNetY block (pycls: between the 3x3 conv and the last 1x1);
        # mmdet's after_conv2 plugins follow the 3x3 conv's ReLU, so they come after SE.
        if self.se is not None:
            out = self.se(out)
        out = self._plugins_at('after_conv2', out)
        out = self.norm3(self.conv3(out))
        out = self._plugins_at('after_conv3', out)
        # In place: saves one full-size allocation per block (neither conv nor BN backward
        # needs this tensor).
        out += x if self.downsample is None else self.downsample(x)
        return out

    def fuse(self) -> None:
        pairs = [('conv1', 'norm1'), ('conv2', 'norm2'), ('conv3', 'norm3')]
        if type(self.conv2) is not nn.Conv2d:  # a deformable conv keeps its norm
            pairs.remove(('conv2', 'norm2'))
        fuse_module_pairs(self, pairs)
        if self.downsample is not None:
            self.downsample.fuse()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            # Recompute the block in backward: activations inside it are not kept.
            out = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.act(out)
