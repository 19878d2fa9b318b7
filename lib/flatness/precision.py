"""Training precision: ``auto``, ``bf16`` (bf16 autocast) or ``fp32``.

``auto`` resolves (:func:`resolve_precision`) to bf16 on CUDA and on a CPU with native bf16
(AVX512-BF16 or AMX: AMD Zen 4, Intel Sapphire Rapids and later), where bf16 autocast trains
about 1.7x faster (``benchmarks/train_throughput.py --cpu-bf16``), and to fp32 on other CPUs,
where bf16 is emulated and slower. Precision changes the weights, so it is part of every
identity, always *resolved* (``fp32`` or ``bf16``: what actually runs): ``auto`` is a
request that the study resolves when it plans its jobs, and the engine records the
resolved precision in every epoch's metrics and in the run's provenance.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flatness.errors import FlatnessError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "bf16", "fp32")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16
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


#: ``1`` or ``0`` declares whether the CPU has native bf16 instead of detecting it: to plan,
#: on one machine, what another kind of CPU would run (the tests pin ``0``).
NATIVE_BF16_ENV = "FLATNESS_NATIVE_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively: ``FLATNESS_NATIVE_BF16`` where set, else
    :func:`detect_native_bf16`."""
    declared = os.environ.get(NATIVE_BF16_ENV)
    if declared is None or declared == "":
        return detect_native_bf16()
    if declared not in ("0", "1"):
        raise FlatnessError(f"{NATIVE_BF16_ENV} must be 1 or 0 (or unset: detect), "
                            f"got {declared!r}")
    return declared == "1"


@functools.cache
def detect_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), asked of torch's own
    detection and of /proc/cpuinfo's flags (either suffices)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    with contextlib.suppress(Exception):
        if any(getattr(torch.cpu, name, lambda: False)() for name in probes):
            return True
    with contextlib.suppress(OSError):
        flags = set(Path("/proc/cpuinfo").read_text().split())
        return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The concrete precision (``"bf16"`` or ``"fp32"``) of ``precision`` on ``device`` (a
    device or its kind, ``"cpu"``/``"cuda"``): ``auto`` is bf16 on CUDA and on a CPU with
    native bf16, fp32 otherwise."""
    check_precision(precision)
    if precision != "auto":
        return precision
    kind = (device if isinstance(device, str) else device.type).split(":")[0]
    native = kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16())
    return "bf16" if native else "fp32"


def uses_bf16(device: torch.device, precision: str = DEFAULT_PRECISION) -> bool:
    """Whether training at ``precision`` on ``device`` runs under bf16 autocast."""
    return resolve_precision(precision, device) == "bf16"
