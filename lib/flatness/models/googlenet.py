"""GoogLeNet (Inception v1) for CIFAR as in kuangliu/pytorch-cifar: a 3x3 conv-BN-ReLU stem of
192 channels, nine inception modules with BN, two stride-2 max-pools between stages
(6,166,250 parameters). ``width`` scales every branch; there is no depth knob.
"""

from __future__ import annotations

import torch
from torch import nn

from flatness.models.layers import conv_bn_relu, global_pool, scaled

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5 (two 3x3), pool projection); "M" = 3x3/2 max-pool
CONFIG: tuple[tuple[int, ...] | str, ...] = (
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "M",
    (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), "M",
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
)


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-3x3-3x3; maxpool-1x1) concatenated."""

    def __init__(self, c_in: int, n1: int, n3r: int, n3: int, n5r: int, n5: int,
                 pool: int) -> None:
        super().__init__()
        self.b1 = nn.Sequential(*conv_bn_relu(c_in, n1, 1, bias=True))
        self.b2 = nn.Sequential(*conv_bn_relu(c_in, n3r, 1, bias=True),
                                *conv_bn_relu(n3r, n3, 3, bias=True))
        self.b3 = nn.Sequential(*conv_bn_relu(c_in, n5r, 1, bias=True),
                                *conv_bn_relu(n5r, n5, 3, bias=True),
                                *conv_bn_relu(n5, n5, 3, bias=True))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), *conv_bn_relu(c_in, pool, 1, bias=True))
        self.out_channels = n1 + n3 + n5 + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def googlenet(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """GoogLeNet (``depth`` must be None)."""
    c = scaled(192, width)
    layers: list[nn.Module] = conv_bn_relu(3, c, 3, bias=True)
    for item in CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(3, 2, 1))
        else:
            block = Inception(c, *(scaled(n, width) for n in item))
            layers.append(block)
            c = block.out_channels
    return nn.Sequential(*layers, *global_pool()), c
