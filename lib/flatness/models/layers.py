"""Building blocks shared by the zoo: channel scaling, conv-BN-ReLU, pre-activation, SE gating.

Every activation is its own ``nn.ReLU()`` module (not in-place, used once per forward pass) so
that LinBP-style techniques can hook each one; nothing here calls a functional ReLU.
"""

from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width)))


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
            bias: bool = False) -> list[nn.Module]:
    """A ``kernel``x``kernel`` convolution ("same" padding) followed by BatchNorm."""
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups,
                      bias=bias),
            nn.BatchNorm2d(c_out)]


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> list[nn.Module]:
    """:func:`conv_bn` followed by a ReLU module."""
    return [*conv_bn(c_in, c_out, kernel, stride, groups, bias), nn.ReLU()]


class PreActivation(nn.Sequential):
    """BN then ReLU, applied to a pre-activation block's input before it splits into two paths.

    Pre-activation blocks whose shortcut is a projection feed the *activated* input to both the
    residual branch and the projection (He et al. 2016, and the kuangliu/pytorch-cifar code).
    Placing this shared BN-ReLU just before the block, in the stage's ``nn.Sequential``, keeps
    the reference computation and parameter count exactly while the block itself stays of the
    form ``residual(x) + shortcut(x)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU())


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gating ``x * sigmoid(fc2(relu(fc1(mean(x)))))`` (Hu et al. 2018).

    The two "fully connected" layers are 1x1 convolutions with bias, as in kuangliu's SENet.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def global_pool() -> list[nn.Module]:
    """Global average pooling to an (N, C) feature vector."""
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
