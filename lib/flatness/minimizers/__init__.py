"""Surrogate-training minimizers behind one step API (see :mod:`flatness.minimizers.base`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from flatness.errors import FlatnessError
from flatness.minimizers.base import SGD, Minimizer, frozen_bn_stats

MINIMIZERS: dict[str, type[Minimizer]] = {"sgd": SGD}


def build_minimizer(
    name: str, model: nn.Module, base_optimizer: torch.optim.Optimizer, **hyperparameters: Any
) -> Minimizer:
    """Build the minimizer ``name`` around ``base_optimizer`` with its hyper-parameters."""
    if name not in MINIMIZERS:
        raise FlatnessError(f"unknown minimizer {name!r}; choose one of: {', '.join(MINIMIZERS)}")
    cls = MINIMIZERS[name]
    unknown = set(hyperparameters) - set(cls.hyperparameters)
    if unknown:
        raise FlatnessError(
            f"minimizer {name!r} has no hyper-parameter {', '.join(sorted(unknown))}; it takes: "
            f"{', '.join(cls.hyperparameters) or 'none'}"
        )
    return cls(model, base_optimizer, **hyperparameters)


__all__ = ["MINIMIZERS", "Minimizer", "build_minimizer", "frozen_bn_stats"]
