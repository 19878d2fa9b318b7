"""Training precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``.

``auto`` keeps CPU runs in fp32 because bf16 autocast pays off only on CPUs with native bf16
(AVX512-BF16, AMX) and is slower elsewhere, and committed cpu results should not depend on the
machine that made them. Where the CPU has it, ``bf16`` trains about 1.7x faster (a Zen 4 core,
``benchmarks/train_throughput.py --cpu-bf16``). Precision changes the weights, so it is part of
every identity, always *resolved* (:func:`resolve_precision`: what actually runs, ``fp32`` or
``bf16``): ``auto`` is a request that the study resolves when it plans its jobs.
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


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """What ``precision`` runs as on ``device`` (a device or its kind, ``"cpu"``/``"cuda"``):
    ``auto`` is bf16 on CUDA and fp32 elsewhere; ``bf16`` and ``fp32`` are themselves."""
    check_precision(precision)
    if precision != "auto":
        return precision
    kind = device if isinstance(device, str) else device.type
    return "bf16" if kind.split(":")[0] == "cuda" else "fp32"


def uses_bf16(device: torch.device, precision: str = DEFAULT_PRECISION) -> bool:
    """Whether training at ``precision`` on ``device`` runs under bf16 autocast."""
    return resolve_precision(precision, device) == "bf16"
