"""Loss landscapes: 1-D and 2-D slices along filter-normalised random directions (Li et al.
2018), and the linear interpolation between two models.

Every grid point is evaluated at weights built afresh from the original ones
(``w0 + a d1 + b d2``, never by accumulating steps, so nothing drifts) through
``torch.func.functional_call``: the model itself is never written. Evaluation is in eval mode
(BatchNorm with the running statistics of ``w0``; for interpolation, the interpolated running
statistics), batched, under ``inference_mode``, with one host sync per slice. Reference for
directions: tomgoldstein/loss-landscape ``net_plotter.py`` (``dir_type="weights"``,
``ignore="biasbn"``, ``norm="filter"``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from flatness.device import autocast, memory_format, resolve_device
from flatness.errors import FlatnessError
from flatness.progress import track
from flatness.provenance import provenance
from flatness.results import Result
from flatness.sharpness._state import evaluation_mode, split_state
from flatness.sharpness.metrics import as_images

Direction = dict[str, torch.Tensor]


def random_direction(model: nn.Module, seed: int, filter_normalize: bool = True) -> Direction:
    """A seeded Gaussian direction over the trainable parameters, Li et al.'s way.

    Parameters with at most one dimension (biases, BatchNorm weights and biases) get zero;
    with ``filter_normalize`` each filter (slice along the first dimension: a conv output
    channel, a linear layer's row) is rescaled to the norm of the matching weight filter.
    Drawn on the CPU, so the direction of a seed is the same on every device.
    """
    gen = torch.Generator().manual_seed(seed)
    direction = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        d = torch.randn(param.shape, generator=gen, dtype=torch.float32)
        w = param.detach().float().cpu()
        if param.dim() <= 1:
            d.zero_()
        elif filter_normalize:
            d_norm = d.flatten(1).norm(dim=1)
            w_norm = w.flatten(1).norm(dim=1)
            d.mul_((w_norm / (d_norm + 1e-10)).view(-1, *([1] * (d.dim() - 1))))
        direction[name] = d.to(device=param.device, dtype=param.dtype)
    return direction


class _Evaluator:
    """Loss and accuracy of ``model`` at arbitrary weights on fixed data (one sync per call)."""

    def __init__(self, model: nn.Module, images: Any, labels: Any, batch_size: int,
                 device: torch.device, amp: bool) -> None:
        self.model, self.device, self.amp = model, device, amp
        fmt = memory_format(device)
        x, y = as_images(images), torch.as_tensor(labels)
        if len(x) != len(y) or len(x) == 0:
            raise FlatnessError(f"got {len(x)} images and {len(y)} labels: pass a non-empty set "
                                "with one label per image")
        self.n = len(x)
        self.batches = [(x[i:i + batch_size].to(device).contiguous(memory_format=fmt),
                         y[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]

    def __call__(self, states: Iterable[dict[str, torch.Tensor]],
                 count: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy at each of the ``count`` full states (parameters and
        buffers) that ``states`` yields (a generator: one state in memory at a time)."""
        totals = torch.zeros(count, 2, device=self.device, dtype=torch.float64)
        with torch.inference_mode():
            for k, state in enumerate(states):
                for x, y in self.batches:
                    with autocast(self.device, self.amp):
                        logits = functional_call(self.model, state, (x,))
                    loss = F.cross_entropy(logits.float(), y, reduction="sum")
                    totals[k, 0] += loss
                    totals[k, 1] += (logits.argmax(1) == y).sum()
        out = (totals / self.n).cpu().numpy()
        return out[:, 0], out[:, 1]


def _full_state(model: nn.Module, device: torch.device) -> tuple[list[str], dict[str, torch.Tensor],
                                                                dict[str, torch.Tensor]]:
    names, values, fixed = split_state(model)
    w0 = {n: v.to(device) for n, v in zip(names, values)}
    return names, w0, {k: v.to(device) for k, v in fixed.items()}


def _check_direction(direction: Direction, w0: dict[str, torch.Tensor], label: str) -> None:
    if set(direction) != set(w0) or any(direction[n].shape != w0[n].shape for n in w0):
        raise FlatnessError(f"direction {label} does not match the model's parameters: build it "
                            "with random_direction(model, seed) on the same architecture")


def _slice(model: nn.Module, directions: list[Direction], points: list[tuple[float, ...]],
           images: Any, labels: Any, test_images: Any, test_labels: Any, batch_size: int,
           device: Any, amp: bool) -> dict[str, np.ndarray]:
    dev = resolve_device(device)
    names, w0, fixed = _full_state(model, dev)
    for i, d in enumerate(directions):
        _check_direction(d, w0, f"d{i + 1}")
    dirs = [{n: d[n].to(dev, w0[n].dtype) for n in names} for d in directions]

    def state_at(coords: tuple[float, ...]) -> dict[str, torch.Tensor]:
        state = dict(fixed)
        for n in names:
            w = w0[n].clone()
            for c, d in zip(coords, dirs):
                w.add_(d[n], alpha=c)
            state[n] = w
        return state

    out: dict[str, np.ndarray] = {}
    with evaluation_mode(model):
        sets = [("train", images, labels)]
        if test_images is not None:
            sets.append(("test", test_images, test_labels))
        for prefix, x, y in sets:
            evaluate = _Evaluator(model, x, y, batch_size, dev, amp)
            out[f"{prefix}_loss"], out[f"{prefix}_acc"] = evaluate(
                track((state_at(p) for p in points), f"{prefix} loss", "point",
                      total=len(points), every_s=10.0), len(points))
    return out


def _result(kind_data: dict[str, Any], config: dict[str, Any], device: Any, wall: float,
            scale: str, seeds: list[int]) -> Result:
    return Result(kind="landscape", scale=scale, config=config, data=kind_data, seeds=seeds,
                  provenance=provenance(resolve_device(device), wall_time_s=wall))


def landscape_1d(model: nn.Module, direction: Direction, alphas: Sequence[float], images: Any,
                 labels: Any, *, test_images: Any = None, test_labels: Any = None,
                 batch_size: int = 500, device: Any = None, amp: bool = False,
                 scale: str = "custom", config: dict[str, Any] | None = None,
                 seeds: Sequence[int] = ()) -> Result:
    """Train loss/accuracy (and test, when given) at ``w0 + alpha d`` for each alpha."""
    start = time.perf_counter()
    alphas = [float(a) for a in alphas]
    grids = _slice(model, [direction], [(a,) for a in alphas], images, labels, test_images,
                   test_labels, batch_size, device, amp)
    data = {"type": "1d", "alphas": alphas, **{k: v.tolist() for k, v in grids.items()}}
    return _result(data, {"type": "1d", "n_images": len(labels), **(config or {})}, device,
                   time.perf_counter() - start, scale, list(seeds))


def landscape_2d(model: nn.Module, d1: Direction, d2: Direction, alphas: Sequence[float],
                 betas: Sequence[float], images: Any, labels: Any, *, test_images: Any = None,
                 test_labels: Any = None, batch_size: int = 500, device: Any = None,
                 amp: bool = False, scale: str = "custom", config: dict[str, Any] | None = None,
                 seeds: Sequence[int] = ()) -> Result:
    """Grids (len(alphas) x len(betas)) of loss/accuracy at ``w0 + alpha d1 + beta d2``."""
    start = time.perf_counter()
    alphas, betas = [float(a) for a in alphas], [float(b) for b in betas]
    points = [(a, b) for a in alphas for b in betas]
    grids = _slice(model, [d1, d2], points, images, labels, test_images, test_labels,
                   batch_size, device, amp)
    shape = (len(alphas), len(betas))
    data = {"type": "2d", "alphas": alphas, "betas": betas,
            **{k: v.reshape(shape).tolist() for k, v in grids.items()}}
    return _result(data, {"type": "2d", "n_images": len(labels), **(config or {})}, device,
                   time.perf_counter() - start, scale, list(seeds))


def interpolate(model_a: nn.Module, model_b: nn.Module, alphas: Sequence[float], images: Any,
                labels: Any, *, test_images: Any = None, test_labels: Any = None,
                batch_size: int = 500, device: Any = None, amp: bool = False,
                scale: str = "custom", config: dict[str, Any] | None = None,
                seeds: Sequence[int] = ()) -> Result:
    """Loss/accuracy at ``(1 - alpha) a + alpha b`` (alpha 0: model_a, 1: model_b).

    Parameters *and* floating-point buffers are interpolated: BatchNorm running means and
    variances move with the weights (a convex mix of the two models' statistics, not
    statistics recomputed at the interpolated weights); integer buffers
    (``num_batches_tracked``) are model_a's. Both models must share an architecture.
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    sa, sb = model_a.state_dict(keep_vars=False), model_b.state_dict(keep_vars=False)
    named = dict(model_a.named_parameters())
    named.update(dict(model_a.named_buffers()))
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise FlatnessError("interpolate needs two models of the same architecture (their state "
                            "dicts differ); load both checkpoints from runs of the same arch")
    a_state = {k: v.detach().to(dev) for k, v in named.items()}
    b_named = dict(model_b.named_parameters())
    b_named.update(dict(model_b.named_buffers()))
    b_state = {k: b_named[k].detach().to(dev) for k in a_state}

    def state_at(alpha: float) -> dict[str, torch.Tensor]:
        return {k: torch.lerp(v, b_state[k], alpha) if v.is_floating_point() else v
                for k, v in a_state.items()}

    alphas = [float(a) for a in alphas]
    out: dict[str, Any] = {"type": "interpolation", "alphas": alphas}
    with evaluation_mode(model_a):
        sets = [("train", images, labels)]
        if test_images is not None:
            sets.append(("test", test_images, test_labels))
        for prefix, x, y in sets:
            evaluate = _Evaluator(model_a, x, y, batch_size, dev, amp)
            loss, acc = evaluate(track((state_at(a) for a in alphas), f"{prefix} loss", "point",
                                       total=len(alphas), every_s=10.0), len(alphas))
            out[f"{prefix}_loss"], out[f"{prefix}_acc"] = loss.tolist(), acc.tolist()
    return _result(out, {"type": "interpolation", "n_images": len(labels), **(config or {})},
                   dev, time.perf_counter() - start, scale, list(seeds))
