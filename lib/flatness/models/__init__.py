"""The CIFAR model zoo: ``build_model(arch, num_classes, width, depth)`` and its contract."""

from flatness.models.base import Normalize, ResidualBlock, ZooModel
from flatness.models.registry import (
    ARCHITECTURES,
    ArchSpec,
    build_model,
    count_parameters,
    relu_modules,
    residual_blocks,
)

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "Normalize",
    "ResidualBlock",
    "ZooModel",
    "build_model",
    "count_parameters",
    "relu_modules",
    "residual_blocks",
]
