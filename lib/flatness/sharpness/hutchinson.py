"""Hutchinson's trace estimator with Rademacher probes, and its stopping rule.

``tr H = E[z^T H z]`` for Rademacher ``z``; the estimate is the sample mean and its stochastic
error the standard error of the mean. Probes are drawn in blocks (one batched Hessian product
per block). Stopping rule, shared by both engines: after each block, stop once at least
``min_samples`` probes are in and the standard error is at most ``tol * |mean|`` (PyHessian's
own rule, the relative change of the running mean, has no ``abs`` in its denominator and stops
after one probe whenever the trace is negative; it is also not a statement about accuracy).
``tol=None`` runs exactly ``max_samples`` probes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def should_stop(samples: list[float], tol: float | None, min_samples: int) -> bool:
    """The stopping rule above, on the probe values gathered so far."""
    if tol is None or len(samples) < max(min_samples, 2):
        return False
    mean, stderr = trace_stats(samples)
    return stderr <= tol * abs(mean)


def trace_stats(samples: list[float]) -> tuple[float, float]:
    """Sample mean and its standard error (``nan`` with fewer than two samples)."""
    arr = np.asarray(samples, dtype=np.float64)
    stderr = float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else float("nan")
    return float(arr.mean()), stderr


def rademacher(shapes: list[torch.Size], count: int, generator: torch.Generator,
               dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``count`` flat Rademacher probes (count, dim), drawn parameter by parameter.

    Drawn in PyHessian's order (for each probe, one ``randint(0, 2)`` tensor per parameter) so
    that a generator seeded like PyHessian's global RNG yields PyHessian's very probes: with
    the same seed both engines average the same ``z^T H z`` terms (common random numbers),
    and their traces differ only by arithmetic.
    """
    probes = [
        torch.cat([torch.randint(0, 2, shape, generator=generator, device=device,
                                 dtype=dtype).reshape(-1) for shape in shapes])
        for _ in range(count)
    ]
    return torch.stack(probes).mul_(2).sub_(1)


def hutchinson(matmat: Callable[[torch.Tensor], torch.Tensor], shapes: list[torch.Size], *,
               max_samples: int, tol: float | None, min_samples: int, block: int,
               generator: torch.Generator, dtype: torch.dtype,
               device: torch.device) -> list[float]:
    """Probe values ``z_i^T H z_i`` until the stopping rule holds or ``max_samples`` are drawn."""
    samples: list[float] = []
    while len(samples) < max_samples:
        b = min(block, max_samples - len(samples))
        z = rademacher(shapes, b, generator, dtype, device)
        samples.extend(torch.einsum("bi,bi->b", z, matmat(z)).double().tolist())
        if should_stop(samples, tol, min_samples):
            break
    return samples
