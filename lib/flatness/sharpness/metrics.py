"""``hessian_metrics``: top eigenvalues, trace and spectral density of the loss Hessian.

The loss is the mean of ``loss_fn`` (cross-entropy by default) over the given subset, the model
in eval mode (BatchNorm uses its running statistics, so the Hessian does not depend on the
batching). Two engines answer the same question: ``"fast"`` (ours: forward-over-reverse
Hessian-vector products batched through ``torch.func``, Lanczos, block Hutchinson deflated by
the Lanczos basis, stochastic Lanczos quadrature) and ``"pyhessian"`` (the reference the field
uses, see :mod:`flatness.sharpness.pyhessian_engine`). Any loss
``loss_fn(outputs, labels) -> scalar`` works with both, which is how the tests use a known
quadratic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flatness.device import resolve_device
from flatness.errors import FlatnessError
from flatness.sharpness._state import evaluation_mode
from flatness.sharpness.hutchinson import (
    deflated_hutchinson,
    hutch_plus_plus,
    hutchinson,
    rademacher,
    trace_stats,
)
from flatness.sharpness.hvp import HVP_MODES, HessianOperator, LossFn
from flatness.sharpness.lanczos import density_on_grid, slq_nodes, top_eigenvalues

ENGINES = ("fast", "pyhessian")
TRACE_METHODS = ("deflated", "hutchinson", "hutch++")


def as_images(images: Any) -> torch.Tensor:
    """Float images in [0, 1], N x C x H x W (uint8 N x H x W x C arrays are converted)."""
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.permute(0, 3, 1, 2)
        x = x.float().div_(255)
    return x.contiguous()


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _fast_metrics(op: HessianOperator, *, top_k: int, which: str, trace: bool, density: bool,
                  max_iter: int, tol: float, trace_samples: int, trace_tol: float | None,
                  trace_min_samples: int, trace_method: str, probe_block: int,
                  density_iter: int, density_runs: int, density_points: int,
                  seed: int) -> dict[str, Any]:
    device, dtype = op.device, op.dtype
    out: dict[str, Any] = {"which": which, "time_s": {}, "hvps": {}}

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        op.hvp_count = 0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out["time_s"][name] = time.perf_counter() - t0
        out["hvps"][name] = op.hvp_count
        return result

    # independent streams per phase, so switching one phase on or off changes no other result;
    # the trace's stream (seed + 1) is PyHessian's for the same seed (see hutchinson.rademacher)
    z = torch.randn(op.dim, generator=_generator(device, seed), device=device, dtype=dtype)

    def eigen() -> tuple:
        # Lanczos starts from the gradient plus a random vector: the gradient lies mostly in
        # the top eigenspace (Gur-Ari, Roberts and Dyer 2018), which saved one product of four
        # on a trained ResNet-18; the random half keeps every direction within reach
        g = op.gradient()
        v0 = z / z.norm() + (g / g.norm() if g.norm() > 0 else 0)
        return top_eigenvalues(op.matvec, v0, top_k, which, max_iter, tol)

    values, residuals, converged, krylov = phase("eigen", eigen)
    out.update(eigenvalues=values.tolist(), eigen_residuals=residuals.tolist(),
               eigen_iterations=len(krylov.alphas), eigen_converged=converged)
    if trace and trace_method == "deflated":
        exact, samples = phase("trace", lambda: deflated_hutchinson(
            op.matmat, op.shapes, krylov, max_samples=trace_samples, tol=trace_tol,
            min_samples=trace_min_samples, block=probe_block,
            generator=_generator(device, seed + 1), dtype=dtype, device=device))
        mean, out["trace_stderr"] = trace_stats(samples)
        out.update(trace=exact + mean, trace_samples=len(samples), trace_exact_part=exact,
                   trace_deflation_rank=len(krylov.alphas))
    elif trace and trace_method == "hutch++":
        out["trace"], out["trace_stderr"], out["trace_samples"] = phase(
            "trace", lambda: hutch_plus_plus(
                op.matmat, op.shapes, budget=trace_samples, block=probe_block,
                generator=_generator(device, seed + 1), dtype=dtype, device=device))
    elif trace:
        samples = phase("trace", lambda: hutchinson(
            op.matmat, op.shapes, max_samples=trace_samples, tol=trace_tol,
            min_samples=trace_min_samples, block=probe_block,
            generator=_generator(device, seed + 1), dtype=dtype, device=device))
        out["trace"], out["trace_stderr"] = trace_stats(samples)
        out["trace_samples"] = len(samples)
    if density:
        gen = _generator(device, seed + 2)

        def run_slq() -> tuple[list[np.ndarray], list[np.ndarray]]:
            nodes, weights = [], []
            for _ in range(density_runs):
                z = rademacher(op.shapes, 1, gen, dtype, device)[0]  # PyHessian's start vector
                n, w = slq_nodes(op.matvec, z, density_iter)
                nodes.append(n)
                weights.append(w)
            return nodes, weights

        nodes, weights = phase("density", run_slq)
        grid, values_on_grid = density_on_grid(nodes, weights, n_points=density_points)
        out["density"] = {"nodes": nodes, "weights": weights, "grid": grid,
                          "values": values_on_grid}
    return out


def hessian_metrics(model: nn.Module, images: Any, labels: Any, *, engine: str = "fast",
                    loss_fn: LossFn | None = None, top_k: int = 1, which: str = "LA",
                    trace: bool = True, density: bool = False, batch_size: int = 100,
                    max_iter: int = 100, tol: float = 1e-3, trace_samples: int = 100,
                    trace_tol: float | None = 1e-2, trace_min_samples: int = 10,
                    trace_method: str | None = None, probe_block: int = 10,
                    density_iter: int = 100, density_runs: int = 1, density_points: int = 1000,
                    hvp_mode: str = "fwd-rev", seed: int = 0,
                    device: str | torch.device | None = None) -> dict[str, Any]:
    """Sharpness of ``model`` on (``images``, ``labels``): eigenvalues, trace, density, timings.

    - ``top_k`` eigenvalues, best first: largest algebraic (``which="LA"``) or largest
      magnitude (``"LM"``); the pyhessian engine (power iteration) always answers LM. Iterations
      stop at ``max_iter`` Hessian products or at relative accuracy ``tol`` (fast: Lanczos
      residual bound or relative change of the Ritz value; pyhessian: relative change between
      power iterations, its own rule).
    - ``trace``: Hutchinson with Rademacher probes, ``trace_samples`` at most, stopping once the
      standard error is below ``trace_tol`` relative (``None``: exactly ``trace_samples``);
      returned with its standard error ``trace_stderr``. ``trace_method`` (default: "deflated"
      for the fast engine, "hutchinson" for pyhessian, its only one): "deflated" takes the
      trace on the eigenvalue phase's Krylov basis exactly and runs Hutchinson on the rest (no
      extra product; a fraction of plain Hutchinson's error when a few eigenvalues dominate,
      see :mod:`flatness.sharpness.hutchinson`); "hutchinson" is plain Hutchinson on
      PyHessian's very probes; "hutch++" spends exactly ``trace_samples`` Hessian products on
      Hutch++ (no stopping rule).
    - ``density``: stochastic Lanczos quadrature, ``density_runs`` runs of ``density_iter``
      steps; nodes and weights per run and a smoothed density on a grid that integrates to 1.
    - ``batch_size`` only bounds memory (eval mode: the loss is the subset mean either way).
    - ``hvp_mode`` (fast engine): ``"fwd-rev"`` (jvp of grad) or ``"rev-rev"`` (vjp of grad).

    The model's weights, buffers, ``.grad`` and training flags are left as they were.
    """
    if engine not in ENGINES:
        raise FlatnessError(f"unknown Hessian engine {engine!r}; use one of {', '.join(ENGINES)}")
    if which not in ("LA", "LM"):
        raise FlatnessError(f"which={which!r} is not supported; use 'LA' (largest algebraic) "
                            "or 'LM' (largest magnitude)")
    if hvp_mode not in HVP_MODES:
        raise FlatnessError(f"unknown hvp_mode {hvp_mode!r}; use one of {', '.join(HVP_MODES)}")
    if top_k < 1 or batch_size < 1 or max_iter < 1 or trace_samples < 2:
        raise FlatnessError("top_k, batch_size and max_iter must be >= 1 and trace_samples >= 2")
    trace_method = trace_method or ("deflated" if engine == "fast" else "hutchinson")
    if trace_method not in TRACE_METHODS:
        raise FlatnessError(f"unknown trace_method {trace_method!r}; use one of "
                            f"{', '.join(TRACE_METHODS)}")
    if trace_method != "hutchinson" and engine != "fast":
        raise FlatnessError(f"trace_method={trace_method!r} needs engine='fast' (PyHessian "
                            "implements Hutchinson only)")
    if trace_method == "hutch++" and trace_samples < 6:
        raise FlatnessError(f"Hutch++ needs trace_samples >= 6 Hessian products, "
                            f"got {trace_samples}")
    dev = resolve_device(device)
    x, y = as_images(images), torch.as_tensor(labels)
    if len(x) != len(y) or len(x) == 0:
        raise FlatnessError(f"got {len(x)} images and {len(y)} labels: pass a non-empty subset "
                            "with one label per image")
    loss_fn = loss_fn or F.cross_entropy
    common = dict(top_k=top_k, trace=trace, density=density, max_iter=max_iter, tol=tol,
                  trace_samples=trace_samples, trace_tol=trace_tol,
                  trace_min_samples=trace_min_samples, probe_block=probe_block,
                  density_iter=density_iter, density_runs=density_runs,
                  density_points=density_points, seed=seed)
    start = time.perf_counter()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if engine == "fast":
        with evaluation_mode(model):
            op = HessianOperator(model, x, y, loss_fn, batch_size, dev, mode=hvp_mode)
            out = _fast_metrics(op, which=which, trace_method=trace_method, **common)
    else:
        from flatness.sharpness.pyhessian_engine import pyhessian_metrics

        out = pyhessian_metrics(model, x, y, loss_fn, batch_size=batch_size, device=dev, **common)
    out["time_s"]["total"] = time.perf_counter() - start
    if trace:
        out["trace_method"] = trace_method
    out.update(engine=engine, top_k=top_k, n_params=n_params, n_images=len(x),
               batch_size=batch_size, max_iter=max_iter, tol=tol, seed=seed, device=str(dev))
    return out
