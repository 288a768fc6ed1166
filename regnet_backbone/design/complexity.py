"""FLOPs, parameters and activations of an AnyNetX network, in pycls's convention (pure Python).

"flops" are multiply-adds; a bias adds one flop per output channel (not per position), BN adds
2 parameters per channel and no flops, activations count every conv/linear output element.
This is how pycls computes the numbers of its model zoo, so those numbers are reproduced exactly.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from .space import AnyNetSpec


@dataclass
class Complexity:
    """A running count over a feature map of size ``h`` x ``w``."""
    h: int
    w: int
    flops: int = 0
    params: int = 0
    acts: int = 0

    def conv(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
             bias: bool = False) -> 'Complexity':
        # 'same' padding (k // 2): the output size does not depend on k.
        self.h, self.w = (self.h - 1) // stride + 1, (self.w - 1) // stride + 1
        self.flops += k * k * c_in * c_out * self.h * self.w // groups + (c_out if bias else 0)
        self.params += k * k * c_in * c_out // groups + (c_out if bias else 0)
        self.acts += c_out * self.h * self.w
        return self

    def norm(self, c: int) -> 'Complexity':
        self.params += 2 * c
        return self


def _block(cx: Complexity, w_in: int, w_out: int, stride: int, w_b: int, group_width: int,
           se_ratio: float) -> None:
    if w_in != w_out or stride != 1:
        h, w = cx.h, cx.w
        cx.conv(w_in, w_out, 1, stride).norm(w_out)
        cx.h, cx.w = h, w  # the shortcut runs beside the residual branch
    cx.conv(w_in, w_b, 1).norm(w_b)
    cx.conv(w_b, w_b, 3, stride, groups=w_b // group_width).norm(w_b)
    w_se = int(round(w_in * se_ratio))
    if w_se:
        h, w = cx.h, cx.w
        cx.h = cx.w = 1  # after global average pooling
        cx.conv(w_b, w_se, 1, bias=True).conv(w_se, w_b, 1, bias=True)
        cx.h, cx.w = h, w
    cx.conv(w_b, w_out, 1).norm(w_out)


def complexity(spec: AnyNetSpec, input_size: Tuple[int, int] = (224, 224), stem_channels: int = 32,
               in_channels: int = 3, num_classes: Optional[int] = 1000,
               strides: Optional[Tuple[int, ...]] = None) -> dict:
    """Count flops (multiply-adds), params and activations of a network.

    Args:
        spec: the architecture.
        input_size: (H, W) of the input image in pixels.
        num_classes: size of the classification head (global pool + linear with bias);
            ``None`` counts the backbone alone.
        strides: per-stage strides (default 2 for every stage). Dilation does not change counts
            other than through the strides.

    Returns:
        dict with integer ``flops``, ``params`` and ``acts``.
    """
    strides = strides or (2, ) * spec.num_stages
    cx = Complexity(*input_size)
    cx.conv(in_channels, stem_channels, 3, stride=2).norm(stem_channels)
    w_in = stem_channels
    for d, w_out, w_b, g, s in zip(spec.depths, spec.widths, spec.bottleneck_widths,
                                   spec.group_widths, strides):
        for i in range(d):
            _block(cx, w_in, w_out, s if i == 0 else 1, w_b, g, spec.se_ratio)
            w_in = w_out
    if num_classes:
        cx.h = cx.w = 1
        cx.conv(w_in, num_classes, 1, bias=True)
    return dict(flops=cx.flops, params=cx.params, acts=cx.acts)
