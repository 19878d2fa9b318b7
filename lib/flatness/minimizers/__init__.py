"""Surrogate-training minimizers behind one step API (see :mod:`flatness.minimizers.base`).

``build_minimizer("sam", model, base_sgd, rho=0.05)`` wraps a base optimizer; the names and
their hyper-parameters with defaults are in :data:`MINIMIZERS` (``python -m flatness
minimizers`` prints them). Large-neighbourhood variants (l-SAM, ...) are the same minimizers
with a large ``rho``: nothing caps it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
from torch import nn

from flatness.errors import FlatnessError
from flatness.minimizers.asam import ASAM
from flatness.minimizers.base import SGD, Minimizer, frozen_bn_stats
from flatness.minimizers.gam import GAM
from flatness.minimizers.gsam import GSAM
from flatness.minimizers.looksam import LookSAM
from flatness.minimizers.sagm import SAGM
from flatness.minimizers.sam import SAM
from flatness.minimizers.swa import SWA

MINIMIZERS: dict[str, type[Minimizer]] = {
    cls.name: cls for cls in (SGD, SAM, ASAM, GSAM, LookSAM, GAM, SAGM, SWA)
}


def get_minimizer_class(name: str) -> type[Minimizer]:
    """The class registered under ``name``, or a clear error listing the names."""
    if name not in MINIMIZERS:
        raise FlatnessError(f"unknown minimizer {name!r}; choose one of: {', '.join(MINIMIZERS)}")
    return MINIMIZERS[name]


def build_minimizer(
    name: str, model: nn.Module, base_optimizer: torch.optim.Optimizer, **hyperparameters: Any
) -> Minimizer:
    """Build the minimizer ``name`` around ``base_optimizer`` with its hyper-parameters."""
    return get_minimizer_class(name)(model, base_optimizer, **hyperparameters)


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_hyperparameters(name: str, items: dict[str, str]) -> dict[str, Any]:
    """Convert command-line strings (``{"rho": "0.05", "k": "5"}``) to the defaults' types.

    Floats accept fractions (``"1/20"``); ints must be whole numbers; booleans accept
    true/false/yes/no/1/0. Unknown keys and unparsable values raise :class:`FlatnessError`.
    """
    defaults = get_minimizer_class(name).hyperparameters
    parsed: dict[str, Any] = {}
    for key, text in items.items():
        if key not in defaults:
            raise FlatnessError(
                f"minimizer {name!r} has no hyper-parameter {key!r}; it takes: "
                f"{', '.join(defaults) or 'none'}")
        parsed[key] = _parse_value(name, key, str(text).strip(), defaults[key])
    return parsed


def _parse_value(name: str, key: str, text: str, default: Any) -> Any:
    kind = type(default).__name__
    try:
        if isinstance(default, bool):
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(Fraction(text)) if "/" in text else float(text)
        return type(default)(text)
    except (ValueError, ZeroDivisionError):
        example = {"bool": "true or false", "int": "a whole number such as 5"}.get(
            kind, "a number such as 0.05")
        raise FlatnessError(
            f"minimizer {name!r}: {key}={text!r} is not a {kind}; give {example}") from None


__all__ = [
    "MINIMIZERS", "Minimizer", "build_minimizer", "frozen_bn_stats", "get_minimizer_class",
    "parse_hyperparameters",
]
