"""VGG with BatchNorm for CIFAR (kuangliu/pytorch-cifar): 3x3 conv-BN-ReLU stacks, five 2x2
max-pools down to 1x1, one linear classifier on the 512 features (VGG-19-BN: 20,040,522
parameters). ``depth`` chooses the configuration (11, 13, 16 or 19 weight layers).
"""

from __future__ import annotations

from torch import nn

from flatness.models.layers import conv_bn_relu, global_pool, scaled

CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


def vgg19_bn(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """VGG-``depth``-BN (default 19); conv layers keep their bias, as in the reference."""
    depth = 19 if depth is None else depth
    layers: list[nn.Module] = []
    c = 3
    for item in CONFIGS[depth]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            out = scaled(int(item), width)
            layers += conv_bn_relu(c, out, 3, bias=True)
            c = out
    return nn.Sequential(*layers, *global_pool()), c
