"""CIFAR ResNets (3x3 stem, no max-pool): ResNet-18/50, PreActResNet-18, SENet-18, and their blocks.

Definitions follow kuangliu/pytorch-cifar (the code most CIFAR transferability papers train),
so full-size parameter counts match the published ones; the only change is structural: every
block is a :class:`~flatness.models.base.ResidualBlock` with named ``residual``, ``shortcut``
and ``act`` modules, and every activation is an ``nn.ReLU`` module.

``depth`` means blocks per stage here: ``depth=1`` gives stages of [1, 1, 1, 1] blocks.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from flatness.models.base import ResidualBlock
from flatness.models.layers import (
    PreActivation,
    SqueezeExcite,
    conv_bn,
    conv_bn_relu,
    global_pool,
    scaled,
)

STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


def projection(c_in: int, c_out: int, stride: int, bn: bool = True) -> nn.Module:
    """The shortcut: identity when shapes agree, else a strided 1x1 convolution (+ BN)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out)) if bn else nn.Sequential(conv)


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.residual = nn.Sequential(*conv_bn_relu(c_in, c_out, 3, stride),
                                      *conv_bn(c_out, c_out, 3))
        self.shortcut = projection(c_in, c_out, stride)
        self.act = nn.ReLU()


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (optionally grouped, carries the stride), 1x1 expand; ReLU after the sum.

    ResNet-50 uses ``groups=1`` and ``c_out = 4 * mid``; ResNeXt uses ``groups = cardinality``
    and ``c_out = 2 * mid``.
    """

    def __init__(self, c_in: int, mid: int, c_out: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.residual = nn.Sequential(*conv_bn_relu(c_in, mid, 1),
                                      *conv_bn_relu(mid, mid, 3, stride, groups),
                                      *conv_bn(mid, c_out, 1))
        self.shortcut = projection(c_in, c_out, stride)
        self.act = nn.ReLU()


class PreActBlock(ResidualBlock):
    """Pre-activation basic block ``residual(x) + shortcut(x)`` (``act`` is the identity).

    With an identity shortcut the branch starts with its own BN-ReLU
    (``conv(relu(bn(conv(relu(bn(x))))))``). With a projection shortcut both paths take the
    activated input, so the BN-ReLU is *not* part of the block: :func:`preact_unit` puts a
    :class:`~flatness.models.layers.PreActivation` just before it. ``se=True`` appends
    squeeze-and-excitation gating to the branch (SENet-18).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, se: bool = False) -> None:
        super().__init__()
        identity = stride == 1 and c_in == c_out
        pre = [nn.BatchNorm2d(c_in), nn.ReLU()] if identity else []
        gate = [SqueezeExcite(c_out)] if se else []
        self.residual = nn.Sequential(*pre,
                                      nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                                      nn.BatchNorm2d(c_out), nn.ReLU(),
                                      nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                                      *gate)
        self.shortcut = projection(c_in, c_out, stride, bn=False)
        self.act = nn.Identity()


def preact_unit(c_in: int, c_out: int, stride: int, se: bool = False) -> list[nn.Module]:
    """A pre-activation block, preceded by its shared BN-ReLU when the shortcut projects."""
    block = PreActBlock(c_in, c_out, stride, se)
    return [block] if isinstance(block.shortcut, nn.Identity) else [PreActivation(c_in), block]


def _blocks_per_stage(depth: int | None, default: tuple[int, ...]) -> tuple[int, ...]:
    return default if depth is None else (depth,) * len(default)


def _resnet(unit, width: float, blocks: tuple[int, ...], stem_act: bool,
            expansion: int = 1) -> tuple[nn.Module, int]:
    """Stem, four stages of ``unit(c_in, planes, stride) -> list[modules]``, global pool."""
    c = scaled(64, width)
    stem = (nn.Sequential(*conv_bn_relu(3, c, 3)) if stem_act
            else nn.Conv2d(3, c, 3, 1, 1, bias=False))
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=stem)
    for i, (planes, stride, n) in enumerate(zip(STAGE_PLANES, STAGE_STRIDES, blocks), start=1):
        p = scaled(planes, width)
        modules: list[nn.Module] = []
        for s in [stride] + [1] * (n - 1):
            modules += unit(c, p, s)
            c = p * expansion
        layers[f"layer{i}"] = nn.Sequential(*modules)
    layers["pool"] = nn.Sequential(*global_pool())
    return nn.Sequential(layers), c


def resnet18(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11,173,962 parameters at full size."""
    return _resnet(lambda i, p, s: [BasicBlock(i, p, s)], width,
                   _blocks_per_stage(depth, (2, 2, 2, 2)), stem_act=True)


def resnet50(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3], 23,520,842 parameters at full size."""
    return _resnet(lambda i, p, s: [Bottleneck(i, p, 4 * p, s)], width,
                   _blocks_per_stage(depth, (3, 4, 6, 3)), stem_act=True, expansion=4)


def preactresnet18(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """PreActResNet-18 (kuangliu: plain conv stem, no final BN-ReLU), 11,171,146 parameters."""
    return _resnet(lambda i, p, s: preact_unit(i, p, s), width,
                   _blocks_per_stage(depth, (2, 2, 2, 2)), stem_act=False)


def senet18(width: float, depth: int | None) -> tuple[nn.Module, int]:
    """SENet-18 (kuangliu: conv-BN-ReLU stem, pre-activation SE blocks), 11,260,354 parameters."""
    return _resnet(lambda i, p, s: preact_unit(i, p, s, se=True), width,
                   _blocks_per_stage(depth, (2, 2, 2, 2)), stem_act=True)
