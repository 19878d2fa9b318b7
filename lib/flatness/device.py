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


def exact_fp32(device: torch.device, precision: str) -> None:
    """Where ``precision`` resolves to fp32 on CUDA, turn TF32 off (cuDNN convolutions use it
    by default), so that an fp32 run computes what an fp32 run on a CPU computes: fp32 is a
    study's identity, and TF32's 10-bit mantissa is not fp32."""
    if device.type == "cuda" and not uses_bf16(device, precision):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


#: oneDNN's strided 1x1 convolution writes its weight gradient past its workspace on NHWC input
#: with fewer input channels than its block (uxlfoundation/oneDNN#6035, open: AVX2's block is
#: 8, AVX-512's 16): wrong gradients, a hang or a crash (torch 2.14.1 on an AVX2-only EPYC:
#: double free in a resnet18@0.0625 backward). Models with such a layer train contiguous on CPU;
#: only test-sized widths have one (resnet18@0.25's narrowest strided shortcut reads 16).
MIN_NHWC_STRIDED_1X1_CHANNELS = 16


def memory_format(device: torch.device, model: torch.nn.Module | None = None
                  ) -> torch.memory_format:
    """channels-last: tensor-core convolutions on CUDA, and oneDNN's NHWC kernels on CPU
    (measured: a resnet18@0.25 training step 0.10 s vs 0.16 s contiguous, 2 threads), except
    on CPU for a ``model`` that oneDNN's NHWC weight gradient gets wrong (see above)."""
    if device.type == "cpu" and model is not None and has_narrow_strided_1x1(model):
        return torch.contiguous_format
    return torch.channels_last


def has_narrow_strided_1x1(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a strided 1x1 convolution reading fewer than
    :data:`MIN_NHWC_STRIDED_1X1_CHANNELS` channels."""
    return any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
               and m.in_channels < MIN_NHWC_STRIDED_1X1_CHANNELS for m in model.modules())


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
