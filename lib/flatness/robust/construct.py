"""The two constructions of Ilyas et al. (2019), batched on the device.

- :func:`invert_representation`: optimise images so that a model's penultimate representation
  (``forward_features``) matches that of target images; ``D_R`` uses a robust model, ``D_NR``
  a standard one. Written here (the robustness library's "representation inversion" is not a
  dependency): per-example L2 distance, L2-normalised gradient steps, pixels clamped to [0, 1],
  no projection (their eps of 1000 never binds).
- :func:`targeted_relabel`: targeted L2 PGD with :func:`flatness.attacks.attack` towards
  :func:`random_targets` (``D_rand``) or :func:`next_class_targets` (``D_det``).
- :func:`start_images`: another random training image per sample (a seeded derangement) or noise.

Every loop is over chunks of images and steps, never samples; no host-device sync inside.
"""

from __future__ import annotations

import torch
from torch import nn

from flatness.attacks import attack
from flatness.attacks._model import attack_mode, model_device
from flatness.device import autocast
from flatness.progress import track


def _l2(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def start_images(x: torch.Tensor, start: str, generator: torch.Generator) -> torch.Tensor:
    """Starting points: ``"image"`` = another image of ``x`` (never itself when len > 1),
    ``"noise"`` = uniform [0, 1] pixels; drawn from a CPU ``generator`` (device-independent)."""
    n = x.shape[0]
    if start == "noise":
        return torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
    perm = torch.randperm(n, generator=generator)
    source = torch.empty(n, dtype=torch.long)
    source[perm] = perm.roll(-1)  # a cycle through a random order: a derangement
    return x[source.to(x.device)].clone()


def random_targets(labels: torch.Tensor, num_classes: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``D_rand`` targets: uniform over all classes, independent of the label (so robust
    features are uncorrelated with the new label; Ilyas et al. section 3.2)."""
    t = torch.randint(num_classes, labels.shape, generator=generator)
    return t.to(labels.device)


def next_class_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``D_det`` targets: ``(y + 1) mod C``."""
    return (labels + 1) % num_classes


@torch.no_grad()
def representation_distance(model: nn.Module, a: torch.Tensor, b: torch.Tensor,
                            batch_size: int = 500) -> torch.Tensor:
    """Per-example ``||g(a) - g(b)||_2`` (on the model's device, float32)."""
    device = model_device(model)
    out = []
    with attack_mode([model]):
        for lo in range(0, a.shape[0], batch_size):
            with autocast(device):
                ga = model.forward_features(a[lo:lo + batch_size].to(device)).float()
                gb = model.forward_features(b[lo:lo + batch_size].to(device)).float()
            out.append((ga - gb).norm(dim=1))
    return torch.cat(out) if out else torch.zeros(0, device=device)


def invert_representation(model: nn.Module, target: torch.Tensor, start: torch.Tensor, *,
                          iterations: int, step_size: float, batch_size: int = 500,
                          channels_last: bool | None = None,
                          progress: bool | None = None) -> torch.Tensor:
    """Images from ``start`` whose representation ``model.forward_features`` matches ``target``'s.

    Minimises ``||g(x_r) - g(x)||_2`` per example by ``iterations`` steps
    ``x_r -= step_size * grad / ||grad||_2`` with ``x_r`` clamped to [0, 1]; returns a tensor
    like ``start``. bf16 autocast and channels-last on CUDA (``channels_last=None``: CUDA only).
    """
    device = model_device(model)
    if channels_last is None:
        channels_last = device.type == "cuda"
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty_like(start)
    with attack_mode([model], channels_last):
        for lo in track(range(0, start.shape[0], batch_size), "representation inversion",
                        "batch", progress=progress):
            x = start[lo:lo + batch_size].to(device, torch.float32).contiguous(memory_format=layout)
            with torch.no_grad(), autocast(device):
                goal = model.forward_features(
                    target[lo:lo + batch_size].to(device, torch.float32)
                    .contiguous(memory_format=layout)).float()
            for _ in range(iterations):
                x.requires_grad_(True)
                with autocast(device):
                    rep = model.forward_features(x).float()
                loss = (rep - goal).norm(dim=1).sum()  # summed: chunks do not change gradients
                (grad,) = torch.autograd.grad(loss, x)
                x = (x.detach() - step_size * grad / (_l2(grad) + 1e-12)).clamp_(0, 1)
            out[lo:lo + batch_size] = x.to(out.device, out.dtype)
    return out


def targeted_relabel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor,
                     *, eps: float, steps: int, step_size: float,
                     batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Targeted L2 PGD (no random start) of ``x`` towards ``targets``; new label = target."""
    adv = attack(model, x, y, eps=eps, steps=steps, step_size=step_size, norm="l2",
                 targeted=True, target_labels=targets, random_start=False,
                 batch_size=batch_size)
    return adv, targets.clone()
