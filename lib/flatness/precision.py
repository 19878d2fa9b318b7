"""Training precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``.

``auto`` keeps CPU runs in fp32 because bf16 autocast pays off only on CPUs with native bf16
(AVX512-BF16, AMX) and is slower elsewhere, and committed cpu results should not depend on the
machine that made them. Where the CPU has it, ``bf16`` trains about 1.7x faster (a Zen 4 core,
``benchmarks/train_throughput.py --cpu-bf16``). Precision changes the weights, so it is part of
a run's identity, but at its default it is left out (:func:`without_default_precision`): runs,
jobs and results named before the option existed keep their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flatness.errors import FlatnessError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "bf16", "fp32")
DEFAULT_PRECISION = "auto"


def precision_problem(value: Any) -> str | None:
    """Why ``value`` names no precision (None when it names one)."""
    if value in PRECISIONS:
        return None
    return f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}"


def check_precision(value: Any) -> str:
    """``value`` if it names a precision, else a clear error."""
    problem = precision_problem(value)
    if problem:
        raise FlatnessError(problem)
    return value


def uses_bf16(device: torch.device, precision: str = DEFAULT_PRECISION) -> bool:
    """Whether training at ``precision`` on ``device`` runs under bf16 autocast."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def without_default_precision(data: Any) -> Any:
    """``data`` (nested dicts and lists) without ``"precision": "auto"`` entries."""
    if isinstance(data, dict):
        return {k: without_default_precision(v) for k, v in data.items()
                if not (k == "precision" and v == DEFAULT_PRECISION)}
    if isinstance(data, (list, tuple)):
        return type(data)(without_default_precision(v) for v in data)
    return data
