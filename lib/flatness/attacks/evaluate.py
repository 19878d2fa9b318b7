"""Transferability evaluation: a fixed selection of images every target gets right, every
target's success rate from one batched pass, and the mean +- 2 std over surrogate seeds.

A success counts only on images the target classified correctly before the attack, so a
target that is right on every selected image at eps = 0 has success rate 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from flatness.attacks._model import as_model_list, attack_mode, model_device
from flatness.attacks.iterative import check_images
from flatness.device import autocast
from flatness.errors import FlatnessError


def predict(models: nn.Module | Sequence[nn.Module], x: torch.Tensor, *,
            batch_size: int = 1000, amp: bool = True, channels_last: bool = True
            ) -> torch.Tensor:
    """Predicted classes of every model on every image: a (models, N) int64 CPU tensor.

    One pass over ``x``: each chunk is moved once per device and fed to every model under
    ``inference_mode`` (bf16 autocast on CUDA); results stay on the device until the end.
    """
    models = as_model_list(models, "models")
    if batch_size < 1:
        raise FlatnessError(f"batch_size must be >= 1 (got {batch_size})")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    preds = [[] for _ in models]
    with attack_mode(models, channels_last), torch.inference_mode():
        for lo in range(0, len(x), batch_size):
            chunk = x[lo:lo + batch_size]
            on_device: dict[torch.device, torch.Tensor] = {}
            for i, model in enumerate(models):
                dev = model_device(model)
                if dev not in on_device:
                    on_device[dev] = chunk.to(dev, non_blocking=True).contiguous(
                        memory_format=layout)
                with autocast(dev, enabled=amp):
                    preds[i].append(model(on_device[dev]).argmax(dim=1))
    if len(x) == 0:
        return torch.empty(len(models), 0, dtype=torch.long)
    return torch.stack([torch.cat(p).cpu() for p in preds])


def select_correct(targets: nn.Module | Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                   n: int, seed: int, *, batch_size: int = 1000, amp: bool = True
                   ) -> torch.Tensor:
    """Indices (sorted, int64) of ``n`` images of ``x`` that every target classifies correctly,
    drawn with a seeded permutation so the same targets, data and seed give the same images."""
    check_images(x)
    if n < 1:
        raise FlatnessError(f"n must be >= 1 (got {n})")
    preds = predict(targets, x, batch_size=batch_size, amp=amp)
    ok = (preds == y.cpu().view(1, -1)).all(dim=0)
    available = int(ok.sum())
    if available < n:
        raise FlatnessError(
            f"only {available} of {len(x)} images are classified correctly by all "
            f"{preds.shape[0]} targets, fewer than the {n} requested; lower n or use more images"
        )
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    chosen = order[ok[order]][:n]
    return chosen.sort().values


def success_rates(
    targets: nn.Module | Sequence[nn.Module],
    x_adv: torch.Tensor,
    y: torch.Tensor,
    *,
    x_clean: torch.Tensor | None = None,
    clean_correct: torch.Tensor | None = None,
    target_labels: torch.Tensor | None = None,
    batch_size: int = 1000,
    amp: bool = True,
) -> torch.Tensor:
    """Success rate of the adversarial examples on each target: a (targets,) float64 tensor.

    Counted over the images each target got right before the attack, given either as
    ``x_clean`` (evaluated in the same pass as ``x_adv``) or as a (targets, N) bool
    ``clean_correct``. Untargeted: success = misclassified; targeted (``target_labels``):
    success = classified as the target label. NaN for a target with no correct image.
    """
    targets = as_model_list(targets, "targets")
    check_images(x_adv, "adversarial images")
    if (x_clean is None) == (clean_correct is None):
        raise FlatnessError("success_rates needs exactly one of x_clean or clean_correct")
    y = y.cpu()
    if x_clean is not None:
        if x_clean.shape != x_adv.shape:
            raise FlatnessError(
                f"x_clean {tuple(x_clean.shape)} and x_adv {tuple(x_adv.shape)} differ in shape")
        both = predict(targets, torch.cat([x_clean, x_adv.to(x_clean.device)]),
                       batch_size=batch_size, amp=amp)
        clean_pred, adv_pred = both[:, :len(x_adv)], both[:, len(x_adv):]
        clean_correct = clean_pred == y.view(1, -1)
    else:
        clean_correct = clean_correct.cpu().bool()
        if clean_correct.shape != (len(targets), len(x_adv)):
            raise FlatnessError(
                f"clean_correct must have shape ({len(targets)}, {len(x_adv)}), got "
                f"{tuple(clean_correct.shape)}")
        adv_pred = predict(targets, x_adv, batch_size=batch_size, amp=amp)
    if target_labels is None:
        success = adv_pred != y.view(1, -1)
    else:
        success = adv_pred == target_labels.cpu().view(1, -1)
    counted = clean_correct.sum(dim=1).double()
    hits = (success & clean_correct).sum(dim=1).double()
    return hits / counted  # 0 / 0 = NaN where a target got nothing right


def aggregate_seeds(rates: Any, ddof: int = 1) -> dict[str, Any]:
    """Summarise success rates of shape (seeds, targets) over surrogate seeds.

    Returns per-target mean and std, the mean over targets for each seed, their mean and std,
    and ``band`` = 2 std (the figures' +- 2 std). With one seed the std is 0.
    """
    r = np.asarray(rates, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 1:
        raise FlatnessError(f"rates must have shape (seeds, targets), got {r.shape}")
    per_seed_mean = np.nanmean(r, axis=1)

    def std(a: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.zeros_like(np.nanmean(a, axis=axis)) if r.shape[0] <= ddof else np.nanstd(
            a, axis=axis, ddof=ddof)

    mean_std = float(std(per_seed_mean))
    return {
        "per_target_mean": np.nanmean(r, axis=0).tolist(),
        "per_target_std": std(r, axis=0).tolist(),
        "per_seed_mean": per_seed_mean.tolist(),
        "mean": float(per_seed_mean.mean()),
        "std": mean_std,
        "band": 2 * mean_std,
        "ddof": ddof,
    }
