"""ResNeXt-29 (32x4d) for CIFAR (Xie et al. 2017), as kuangliu/pytorch-cifar's ``ResNeXt29_32x4d``.

Three stages of three grouped bottleneck blocks (cardinality 32, bottleneck width 4 doubling per
stage, expansion 2), 1024-dimensional features. One deliberate difference: a 3x3 stem
convolution as in the paper and the rest of the zoo (kuangliu uses 1x1), which adds 1,536
parameters: 4,775,754 in all (kuangliu: 4,774,218).

``width`` scales the group widths (128, 256, 512), the 64-channel stem and the cardinality
(``round(32 * width)``), so narrow versions keep 4-, 8- and 16-channel groups rather than
turning depthwise (width 0.25 is a "ResNeXt-29 8x4d"); where the scaled cardinality does not
divide the group width, the largest divisor below it is used. ``depth`` is blocks per stage.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from flatness.models.layers import conv_bn_relu, global_pool, scaled
from flatness.models.resnet import Bottleneck

CARDINALITY = 32
BOTTLENECK_WIDTH = 4


def groups_for(group_width: int, cardinality: int) -> int:
    """The largest number of groups <= ``cardinality`` that divides ``group_width``."""
    return max(g for g in range(1, min(cardinality, group_width) + 1) if group_width % g == 0)


def resnext29(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """ResNeXt-29 32x4d with ``depth`` blocks per stage (default 3)."""
    n = 3 if depth is None else depth
    c = scaled(64, width)
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Sequential(*conv_bn_relu(3, c, 3)))
    for i, stride in enumerate((1, 2, 2), start=1):
        group_width = scaled(CARDINALITY * BOTTLENECK_WIDTH * 2 ** (i - 1), width)
        groups = groups_for(group_width, scaled(CARDINALITY, width))
        modules: list[nn.Module] = []
        for s in [stride] + [1] * (n - 1):
            modules.append(Bottleneck(c, group_width, 2 * group_width, s, groups))
            c = 2 * group_width
        layers[f"layer{i}"] = nn.Sequential(*modules)
    layers["pool"] = nn.Sequential(*global_pool())
    return nn.Sequential(layers), c
