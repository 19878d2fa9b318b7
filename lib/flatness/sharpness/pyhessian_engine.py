"""The reference engine: PyPI ``pyhessian`` 0.1 (Yao et al. 2020), used as installed.

Three things in that release need care, handled here without copying its code:

- ``density()`` calls ``torch.eig``, removed from PyTorch: while it runs, :func:`torch_eig_shim`
  replaces ``torch.eig`` by ``torch.linalg.eigh`` (its matrix is the symmetric Lanczos
  tridiagonal), returning the old ``(n, 2)`` real/imaginary layout.
- ``trace()`` tests ``|mean_n - mean_{n-1}| / (mean_{n-1} + 1e-6) < tol`` without an ``abs``
  in the denominator, so a negative trace stops after one probe. We call it with ``tol=-inf``
  (never true: a fixed number of probes per call), one block at a time, and apply the stopping
  rule of :mod:`flatness.sharpness.hutchinson` between blocks, so both engines share it.
- Its ``cuda`` flag means "the current CUDA device" and it moves batches there; we pass
  ``cuda=(device.type == "cuda")`` inside ``torch.cuda.device(device)``. With more images than
  ``batch_size`` it runs in dataloader mode (a list of equal batches, Hessian products weighted
  by batch size); otherwise in single-batch mode (one graph kept and reused).

Its eigenvalues come from power iteration with deflation, which converges to the eigenvalues
of largest *magnitude*: this engine always answers ``which="LM"``. Its random vectors come from
the global RNG, seeded here inside ``torch.random.fork_rng`` so the caller's RNG is untouched;
the trace phase is seeded with ``seed + 1``, which makes its Rademacher probes those of the fast
engine for the same seed (see :func:`flatness.sharpness.hutchinson.rademacher`).
It builds graphs on the model's own parameters (``.grad`` is restored afterwards); a model on
another device than ``device`` is deep-copied there first.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import nn

from flatness.sharpness._state import evaluation_mode
from flatness.sharpness.hutchinson import should_stop, trace_stats
from flatness.sharpness.lanczos import density_on_grid


def _eig_via_eigh(matrix: torch.Tensor,
                  eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.eig`` of PyTorch < 2 for a symmetric matrix: ((n, 2) [real, imag], vectors)."""
    values, vectors = torch.linalg.eigh(matrix)
    packed = torch.stack([values, torch.zeros_like(values)], dim=1)
    return packed, (vectors if eigenvectors else matrix.new_empty(0))


@contextlib.contextmanager
def torch_eig_shim() -> Iterator[None]:
    """Temporarily provide the removed ``torch.eig`` (symmetric inputs only) to PyHessian."""
    with mock.patch.object(torch, "eig", _eig_via_eigh):
        yield


def _counted(fn: Callable[..., Any], counter: list[int]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return fn(*args, **kwargs)
    return wrapper


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def pyhessian_metrics(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                      top_k: int, trace: bool, density: bool, batch_size: int, max_iter: int,
                      tol: float, trace_samples: int, trace_tol: float | None,
                      trace_min_samples: int, probe_block: int, density_iter: int,
                      density_runs: int, density_points: int, seed: int,
                      device: torch.device) -> dict[str, Any]:
    """Top eigenvalues, trace and density with PyHessian (see the module docstring)."""
    pyhessian_module = importlib.import_module("pyhessian.hessian")  # the module, not the class

    work = model if _model_device(model) == device else copy.deepcopy(model).to(device)
    cuda = device.type == "cuda"
    out: dict[str, Any] = {"which": "LM", "time_s": {}, "hvps": {}}
    counter = [0]
    cuda_ctx = torch.cuda.device(device) if cuda else contextlib.nullcontext()
    rng_devices = []
    if cuda:
        rng_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with warnings.catch_warnings(), evaluation_mode(model), evaluation_mode(work), cuda_ctx, \
            torch.random.fork_rng(devices=rng_devices), \
            mock.patch.object(pyhessian_module, "hessian_vector_product",
                              _counted(pyhessian_module.hessian_vector_product, counter)):
        torch.manual_seed(seed)
        # PyHessian calls backward(create_graph=True); the param <-> grad cycle it warns about
        # is broken when evaluation_mode restores the grads
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        x, y = images.to(device), labels.to(device)
        start = time.perf_counter()
        if len(x) <= batch_size:
            engine = pyhessian_module.hessian(work, loss_fn, data=(x, y), cuda=cuda)
        else:
            batches = [(x[i:i + batch_size], y[i:i + batch_size])
                       for i in range(0, len(x), batch_size)]
            engine = pyhessian_module.hessian(work, loss_fn, dataloader=batches, cuda=cuda)
            engine.dataloader_hv_product = _counted(engine.dataloader_hv_product, counter)
        _sync(device)
        setup = time.perf_counter() - start

        def phase(name: str, fn: Callable[[], Any]) -> Any:
            counter[0] = 0
            _sync(device)
            t0 = time.perf_counter()
            result = fn()
            _sync(device)
            out["time_s"][name] = time.perf_counter() - t0 + (setup if name == "eigen" else 0.0)
            out["hvps"][name] = counter[0]
            return result

        values, _ = phase("eigen",
                          lambda: engine.eigenvalues(maxIter=max_iter, tol=tol, top_n=top_k))
        out["eigenvalues"] = [float(v) for v in values]
        out["eigen_iterations"] = out["hvps"]["eigen"]
        if trace:
            def run_trace() -> list[float]:
                samples: list[float] = []
                while len(samples) < trace_samples:
                    block = min(probe_block, trace_samples - len(samples))
                    samples.extend(engine.trace(maxIter=block, tol=float("-inf")))
                    if should_stop(samples, trace_tol, trace_min_samples):
                        break
                return samples

            torch.manual_seed(seed + 1)  # the fast engine's probe stream: common random numbers
            samples = phase("trace", run_trace)
            out["trace"], out["trace_stderr"] = trace_stats(samples)
            out["trace_samples"] = len(samples)
        if density:
            torch.manual_seed(seed + 2)  # the fast engine's SLQ start vectors
            with torch_eig_shim():
                nodes, weights = phase(
                    "density", lambda: engine.density(iter=density_iter, n_v=density_runs))
            nodes = [np.asarray(n, dtype=np.float64) for n in nodes]
            weights = [np.asarray(w, dtype=np.float64) for w in weights]
            grid, values_on_grid = density_on_grid(nodes, weights, n_points=density_points)
            out["density"] = {"nodes": nodes, "weights": weights, "grid": grid,
                              "values": values_on_grid}
    return out
