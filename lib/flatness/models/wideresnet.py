"""WideResNet-d-k for CIFAR (Zagoruyko & Komodakis 2016), no dropout.

Follows the widely used xternalz/WideResNet-pytorch definition (pre-activation basic blocks,
1x1 projection without BN, final BN-ReLU); WRN-28-10 has 36,479,194 parameters. ``width``
multiplies every channel count (stem 16, stages 16k, 32k, 64k with k = 10); ``depth`` is the
network depth d, with (d - 4) divisible by 6 (blocks per stage = (d - 4) / 6).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from flatness.models.layers import global_pool, scaled
from flatness.models.resnet import preact_unit

WIDEN_FACTOR = 10


def wideresnet28_10(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """WRN-``depth``-10 (default depth 28) with channel counts scaled by ``width``."""
    n = ((28 if depth is None else depth) - 4) // 6
    c = scaled(16, width)
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Conv2d(3, c, 3, 1, 1, bias=False))
    for i, (planes, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
        p = scaled(planes * WIDEN_FACTOR, width)
        modules: list[nn.Module] = []
        for s in [stride] + [1] * (n - 1):
            modules += preact_unit(c, p, s)
            c = p
        layers[f"layer{i}"] = nn.Sequential(*modules)
    layers["head"] = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
    layers["pool"] = nn.Sequential(*global_pool())
    return nn.Sequential(layers), c
