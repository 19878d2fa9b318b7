"""DenseNet-BC for CIFAR (Huang et al. 2017) as in kuangliu/pytorch-cifar: 3x3 stem of
2 x growth channels, bottleneck dense layers (BN-ReLU-1x1 to 4 x growth, BN-ReLU-3x3 to growth),
transitions halving channels and resolution; DenseNet-121 (growth 32): 6,956,298 parameters.

``width`` scales the growth rate (and so every channel count); ``depth`` picks the layer
configuration: 121 [6, 12, 24, 16], 169 [6, 12, 32, 32], 201 [6, 12, 48, 32], or the cheap
63 [3, 6, 12, 8] (half of 121's layers, same proportions).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from flatness.models.layers import global_pool, scaled

GROWTH = 32
REDUCTION = 0.5
CONFIGS: dict[int, tuple[int, int, int, int]] = {
    63: (3, 6, 12, 8),
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
}


class DenseLayer(nn.Module):
    """``cat([branch(x), x])`` with the pre-activation bottleneck ``branch``."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch(x), x], 1)


def transition(c_in: int, c_out: int) -> nn.Sequential:
    """BN-ReLU, 1x1 convolution to ``c_out`` channels, 2x2 average pooling."""
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.AvgPool2d(2))


def densenet121(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """DenseNet-``depth`` (default 121) with growth rate ``32 * width``."""
    depth = 121 if depth is None else depth
    growth = scaled(GROWTH, width)
    c = 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1, bias=False)]
    blocks = CONFIGS[depth]
    for i, n in enumerate(blocks):
        for _ in range(n):
            layers.append(DenseLayer(c, growth))
            c += growth
        if i < len(blocks) - 1:
            out = int(math.floor(c * REDUCTION))
            layers.append(transition(c, out))
            c = out
    layers += [nn.BatchNorm2d(c), nn.ReLU(), *global_pool()]
    return nn.Sequential(*layers), c
