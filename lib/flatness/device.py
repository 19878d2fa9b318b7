"""Choosing the compute device and the matching fast-path settings."""

from __future__ import annotations

import torch

from flatness.errors import FlatnessError
from flatness.precision import uses_bf16


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` means CUDA when available, else CPU; checks CUDA requests."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise FlatnessError(f"unknown device {device!r} ({exc}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FlatnessError(
            f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def autocast(device: torch.device, enabled: bool = True, precision: str | None = None):
    """bf16 autocast where a training ``precision`` resolves to bf16 (:mod:`flatness.precision`);
    without one (attacks, evaluation), bf16 on CUDA only, so CPU attacks stay fp32 everywhere."""
    bf16 = device.type == "cuda" if precision is None else uses_bf16(device, precision)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and bf16)


def memory_format(device: torch.device) -> torch.memory_format:
    """channels-last everywhere: tensor-core convolutions on CUDA, and oneDNN's NHWC kernels on
    CPU (measured: a resnet18@0.25 training step 0.10 s vs 0.16 s contiguous, 2 threads)."""
    return torch.channels_last


def memory_budget(device: torch.device) -> int:
    """Bytes a computation may keep resident: half the free accelerator memory, or a quarter
    of the host's available memory (``/proc/meminfo``; 2 GiB where it cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 2
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        return int(fields["MemAvailable"].split()[0]) * 1024 // 4
    except (OSError, KeyError, ValueError):
        return 2 << 30
