"""MobileNetV2 for CIFAR (Sandler et al. 2018) as in kuangliu/pytorch-cifar: stride-1 stem and
second stage, ReLU activations, and a 1x1 conv-BN projection on stride-1 blocks whose channel
count changes (2,296,922 parameters). Stride-1 blocks are
:class:`~flatness.models.base.ResidualBlock`\\ s with a linear (identity) ``act``; stride-2
blocks have no shortcut. ``width`` scales every channel count; there is no depth knob.
"""

from __future__ import annotations

from torch import nn

from flatness.models.base import ResidualBlock
from flatness.models.layers import conv_bn, conv_bn_relu, global_pool, scaled
from flatness.models.resnet import projection

# (expansion, out_channels, blocks, stride of the first block)
CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))


def inverted_bottleneck(c_in: int, c_out: int, expansion: int, stride: int) -> list[nn.Module]:
    """1x1 expand, 3x3 depthwise (carries the stride), 1x1 linear projection."""
    mid = expansion * c_in
    return [*conv_bn_relu(c_in, mid, 1), *conv_bn_relu(mid, mid, 3, stride, groups=mid),
            *conv_bn(mid, c_out, 1)]


class InvertedResidual(ResidualBlock):
    """A stride-1 inverted bottleneck plus its shortcut; no activation after the sum."""

    def __init__(self, c_in: int, c_out: int, expansion: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(*inverted_bottleneck(c_in, c_out, expansion, 1))
        self.shortcut = projection(c_in, c_out, 1)
        self.act = nn.Identity()


def mobilenetv2(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """MobileNetV2 (``depth`` must be None)."""
    c = scaled(32, width)
    layers: list[nn.Module] = conv_bn_relu(3, c, 3)
    for expansion, out, n, stride in CONFIG:
        out = scaled(out, width)
        for s in [stride] + [1] * (n - 1):
            layers.append(InvertedResidual(c, out, expansion) if s == 1
                          else nn.Sequential(*inverted_bottleneck(c, out, expansion, s)))
            c = out
    head = scaled(1280, width)
    layers += [*conv_bn_relu(c, head, 1), *global_pool()]
    return nn.Sequential(*layers), head
