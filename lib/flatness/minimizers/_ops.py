"""Whole-model vector arithmetic on parameter lists with fused ``torch._foreach_*`` kernels.

Every minimizer treats the gradients of all parameters as one long vector (norms, dot
products, projections). These helpers do that without a Python loop over parameters and
without any host synchronisation: results stay 0-d tensors on the parameters' device.
"""

from __future__ import annotations

import torch

Tensors = list[torch.Tensor]


def global_norm(tensors: Tensors) -> torch.Tensor:
    """The L2 norm of the concatenation of ``tensors`` (0-d, at least fp32)."""
    norms = torch.stack(torch._foreach_norm(tensors))
    return torch.linalg.vector_norm(norms, dtype=torch.promote_types(norms.dtype, torch.float32))


def dot(a: Tensors, b: Tensors, norm_a: torch.Tensor, norm_b: torch.Tensor) -> torch.Tensor:
    """The inner product <a, b> of two vectors stored as lists, from ``||a + b||``.

    PyTorch has no fused per-tensor sum, so we use the polarization identity
    ``<a, b> = (||a + b||^2 - ||a||^2 - ||b||^2) / 2`` with the norms the caller already has:
    one fused add and one fused norm instead of one reduction kernel per parameter. The
    cancellation error is ~1e-7 (||a||^2 + ||b||^2) in fp32, far below what the updates need.
    """
    total = global_norm(torch._foreach_add(a, b))
    return (total.square() - norm_a.square() - norm_b.square()) / 2


def scaled(tensors: Tensors, factor: torch.Tensor) -> Tensors:
    """``[t * factor for t in tensors]`` for a 0-d tensor factor, as one fused kernel."""
    return torch._foreach_mul(tensors, factor)
