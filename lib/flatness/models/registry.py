"""The model zoo: architecture names -> builders, plus the helpers attacks use to find blocks.

``build_model(arch, num_classes, width, depth)`` returns a :class:`ZooModel`; ``width``
multiplies every channel count (at least one channel each), ``depth`` has an architecture-
specific meaning listed in :data:`ARCHITECTURES` (``None`` = the published depth).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from flatness.errors import FlatnessError
from flatness.models import densenet, googlenet, mobilenetv2, resnet, resnext, vgg, wideresnet
from flatness.models.base import ResidualBlock, ZooModel

Builder = Callable[[float, "int | None"], "tuple[nn.Module, int]"]


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its body builder and what its ``depth`` knob means (None: no knob)."""

    builder: Builder
    depth_help: str | None = None
    depth_ok: Callable[[int], bool] | None = None


def _positive(d: int) -> bool:
    return d >= 1


_BLOCKS = "blocks per stage (an integer >= 1)"

ARCHITECTURES: dict[str, ArchSpec] = {
    "resnet18": ArchSpec(resnet.resnet18, f"{_BLOCKS}; default 2", _positive),
    "resnet50": ArchSpec(resnet.resnet50, f"{_BLOCKS}; default [3, 4, 6, 3]", _positive),
    "preactresnet18": ArchSpec(resnet.preactresnet18, f"{_BLOCKS}; default 2", _positive),
    "wideresnet28_10": ArchSpec(
        wideresnet.wideresnet28_10, "network depth d >= 10 with (d - 4) % 6 == 0; default 28",
        lambda d: d >= 10 and (d - 4) % 6 == 0),
    "vgg19_bn": ArchSpec(vgg.vgg19_bn, "one of 11, 13, 16, 19; default 19",
                         lambda d: d in vgg.CONFIGS),
    "densenet121": ArchSpec(densenet.densenet121, "one of 63, 121, 169, 201; default 121",
                            lambda d: d in densenet.CONFIGS),
    "mobilenetv2": ArchSpec(mobilenetv2.mobilenetv2),
    "googlenet": ArchSpec(googlenet.googlenet),
    "resnext29": ArchSpec(resnext.resnext29, f"{_BLOCKS}; default 3", _positive),
    "senet18": ArchSpec(resnet.senet18, f"{_BLOCKS}; default 2", _positive),
}


def build_model(arch: str, num_classes: int = 10, width: float = 1.0,
                depth: int | None = None) -> ZooModel:
    """A freshly initialised CIFAR model (PyTorch default init; seed with torch.manual_seed)."""
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        raise FlatnessError(f"unknown architecture {arch!r}; choose one of "
                            f"{', '.join(ARCHITECTURES)}")
    if (isinstance(width, bool) or not isinstance(width, int | float)
            or not math.isfinite(width) or width <= 0):
        raise FlatnessError(f"width must be a positive number (1.0 = published size), "
                            f"got {width!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise FlatnessError(f"num_classes must be a positive integer, got {num_classes!r}")
    if depth is not None:
        if spec.depth_ok is None:
            with_depth = ", ".join(a for a, s in ARCHITECTURES.items() if s.depth_ok)
            raise FlatnessError(f"{arch} has no depth option; leave depth unset "
                                f"(architectures with one: {with_depth})")
        if isinstance(depth, bool) or not isinstance(depth, int) or not spec.depth_ok(depth):
            raise FlatnessError(f"{arch} depth {depth!r} is unsupported; "
                                f"depth is {spec.depth_help}")
    body, feature_dim = spec.builder(float(width), depth)
    model = ZooModel(body, feature_dim, num_classes)
    model.arch, model.width, model.depth = arch, float(width), depth
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def residual_blocks(model: nn.Module) -> list[ResidualBlock]:
    """Every :class:`ResidualBlock`, in module (= execution) order; empty for plain networks."""
    return [m for m in model.modules() if isinstance(m, ResidualBlock)]


def relu_modules(model: nn.Module) -> list[nn.ReLU]:
    """Every ``nn.ReLU`` module, in module order; each runs exactly once per forward pass."""
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]
