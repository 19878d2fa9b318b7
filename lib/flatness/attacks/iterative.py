"""Iterative gradient attacks (BIM / I-FGSM, PGD) in L-inf and L2, on one surrogate or an
ensemble, with composable transfer techniques.

Written here rather than taken from torchattacks because the study needs what it lacks:
ensembles (averaged logits or losses, or LGV's one-model-per-step cycling), techniques that
compose (MI + DI + TI + SGM ...), model-side techniques for the project's zoo, chunked batches,
and no permanent change to the surrogates. torchattacks (BIM, PGD, PGDL2, MIFGSM, DIFGSM,
TIFGSM) is the test oracle: same settings and seeds give the same adversarial examples.

Every step projects onto the eps-ball around the clean image and onto [0, 1] pixels.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flatness.attacks._model import as_model_list, attack_mode, model_device, num_classes
from flatness.attacks.techniques import AttackRNG, Technique, parse_techniques
from flatness.device import autocast
from flatness.errors import FlatnessError
from flatness.progress import track

NORMS = ("linf", "l2")
ENSEMBLES = ("logits", "loss", "cycle")


def check_images(x: torch.Tensor, what: str = "images") -> None:
    """Images must be a float N x C x H x W tensor with every pixel in [0, 1] (one host sync)."""
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 4:
        raise FlatnessError(f"{what} must be a float tensor of shape N x C x H x W")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise FlatnessError(
            f"{what} have pixels outside [0, 1] (min {float(x.min()):.4g}, max "
            f"{float(x.max()):.4g}); pass un-normalised images, the models normalise inside"
        )


def _check_labels(y: torch.Tensor, n: int, classes: int, what: str) -> None:
    if not torch.is_tensor(y) or y.shape != (n,) or y.is_floating_point():
        raise FlatnessError(f"{what} must be an integer tensor of shape ({n},)")
    if n and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise FlatnessError(f"{what} must lie in [0, {classes}) for these {classes}-class models")


def _check_params(eps: float, steps: int, step_size: float, norm: str, ensemble: str,
                  batch_size: int) -> None:
    if not math.isfinite(eps) or eps < 0:
        raise FlatnessError(f"eps must be a finite number >= 0 (got {eps})")
    if not isinstance(steps, int) or steps < 1:
        raise FlatnessError(f"steps must be an integer >= 1 (got {steps})")
    if not math.isfinite(step_size) or step_size < 0 or (step_size == 0 and eps > 0):
        raise FlatnessError(f"step size must be > 0 (got {step_size}); default is eps / 10")
    if norm not in NORMS:
        raise FlatnessError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    if ensemble not in ENSEMBLES:
        raise FlatnessError(
            f"unknown ensemble mode {ensemble!r}; use one of {', '.join(ENSEMBLES)}")
    if batch_size < 1:
        raise FlatnessError(f"batch_size must be >= 1 (got {batch_size})")


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.ndim - 1)))


def attack(
    surrogates: nn.Module | Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
    norm: str = "linf",
    targeted: bool = False,
    target_labels: torch.Tensor | None = None,
    random_start: bool = False,
    ensemble: str = "logits",
    techniques: Sequence[Technique] | str = (),
    generator: torch.Generator | None = None,
    batch_size: int = 500,
    amp: bool = True,
    channels_last: bool = True,
    progress: bool | None = None,
) -> torch.Tensor:
    """Craft adversarial examples for ``x`` (N x C x H x W in [0, 1]) with true labels ``y``.

    ``step_size`` defaults to ``eps / 10``. Untargeted attacks ascend the cross-entropy of
    ``y``; targeted ones (``targeted=True``) descend that of ``target_labels``. Ensembles:
    ``"logits"`` averages logits, ``"loss"`` averages losses, ``"cycle"`` uses surrogate
    ``step % len(surrogates)`` at each step (LGV). ``generator`` seeds every random choice
    (random start, DI, ghost networks); ``None`` uses torch's global RNG like torchattacks.
    Works chunk by chunk (``batch_size`` images at a time, on the surrogates' device, bf16
    autocast on CUDA when ``amp``, channels-last layout when ``channels_last``: faster on CUDA
    and on CPU alike); returns a tensor like ``x`` (same device and dtype). ``progress``
    reports each chunk (see :mod:`flatness.progress`; ``None``: automatic).
    """
    models = as_model_list(surrogates, "surrogates")
    if isinstance(techniques, str):
        techniques = parse_techniques(techniques)
    techniques = list(techniques)
    step_size = eps / 10 if step_size is None else float(step_size)
    _check_params(float(eps), steps, step_size, norm, ensemble, batch_size)
    check_images(x)
    device = model_device(models[0])
    if len(x) == 0:
        return x.clone()
    widths = sorted({num_classes(m, x[:1]) for m in models})
    if len(widths) > 1:
        raise FlatnessError(
            f"the surrogates disagree on the number of classes ({widths}); ensemble "
            "models trained on the same label set"
        )
    _check_labels(y, len(x), widths[0], "labels")
    if targeted:
        if target_labels is None:
            raise FlatnessError("targeted=True needs target_labels (one class per image)")
        _check_labels(target_labels, len(x), widths[0], "target_labels")
        goal = target_labels
    else:
        if target_labels is not None:
            raise FlatnessError("target_labels given but targeted=False; set targeted=True")
        goal = y

    rng = AttackRNG(generator, device)
    input_t = [t for t in techniques if t.has_input_transform]
    grad_t = sorted((t for t in techniques if t.has_gradient_transform), key=lambda t: t.stage)
    out = torch.empty_like(x)
    with contextlib.ExitStack() as stack:
        stack.enter_context(attack_mode(models, channels_last))
        for model in models:
            for t in techniques:
                stack.enter_context(t.patch(model, rng))
        for lo in track(range(0, len(x), batch_size), f"attack {len(x)} images", "batch",
                        progress=progress):
            hi = min(lo + batch_size, len(x))
            adv = _attack_chunk(
                models, x[lo:hi].to(device), goal[lo:hi].to(device), sign=-1.0 if targeted else 1.0,
                eps=float(eps), steps=steps, step_size=step_size, norm=norm,
                random_start=random_start, ensemble=ensemble, input_t=input_t, grad_t=grad_t,
                rng=rng, amp=amp, channels_last=channels_last,
            )
            out[lo:hi] = adv.to(out.device, out.dtype)
    return out


def _loss(models: Sequence[nn.Module], x: torch.Tensor, labels: torch.Tensor, ensemble: str,
          step: int, amp: bool) -> torch.Tensor:
    """Summed cross-entropy of the ensemble (summing keeps chunking from changing gradients)."""
    device = x.device
    with autocast(device, enabled=amp):
        if ensemble == "cycle":
            logits = models[step % len(models)](x)
        elif ensemble == "logits" or len(models) == 1:
            logits = sum(m(x) for m in models) / len(models)
        else:
            return sum(F.cross_entropy(m(x).float(), labels, reduction="sum")
                       for m in models) / len(models)
    return F.cross_entropy(logits.float(), labels, reduction="sum")


def _attack_chunk(models, x0, labels, *, sign, eps, steps, step_size, norm, random_start,
                  ensemble, input_t, grad_t, rng, amp, channels_last) -> torch.Tensor:
    """The step loop on one chunk already on the surrogates' device (no host syncs inside)."""
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    if norm == "linf":
        lower, upper = (x0 - eps).clamp_min(0), (x0 + eps).clamp_max(1)
    adv = x0.clone()
    if random_start:  # noise drawn in the standard layout, so it does not depend on x0's
        noise = torch.empty(x0.shape, dtype=x0.dtype, device=x0.device)
        if norm == "linf":
            adv = adv + noise.uniform_(-eps, eps, generator=rng.tensor)
        else:  # torchattacks PGDL2: a random direction with a uniform radius
            delta = noise.normal_(generator=rng.tensor)
            radius = torch.zeros_like(_per_example_norm(delta)).uniform_(0, 1, generator=rng.tensor)
            adv = adv + delta * radius / _per_example_norm(delta) * eps
        adv = adv.clamp(0, 1)
    states = [t.init_state(x0) for t in grad_t]
    for step in range(steps):
        adv.requires_grad_(True)
        inp = adv
        for t in input_t:
            inp = t.transform_input(inp, rng)
        loss = _loss(models, inp, labels, ensemble, step, amp)
        (grad,) = torch.autograd.grad(sign * loss, adv)
        for i, t in enumerate(grad_t):
            grad, states[i] = t.transform_gradient(grad, states[i])
        adv = adv.detach()
        if norm == "linf":
            adv = torch.clamp(adv + step_size * grad.sign(), lower, upper)
        else:
            adv = adv + step_size * grad / (_per_example_norm(grad) + 1e-10)
            delta = adv - x0
            norm_d = _per_example_norm(delta).clamp_min(torch.finfo(delta.dtype).tiny)
            delta = delta * torch.clamp(eps / norm_d, max=1.0)
            adv = torch.clamp(x0 + delta, 0, 1)
    return adv.detach()


def bim(surrogates, x, y, *, eps: float, steps: int = 50, step_size: float | None = None,
        **kwargs) -> torch.Tensor:
    """BIM / I-FGSM: :func:`attack` from the clean image (the protocol's attack)."""
    return attack(surrogates, x, y, eps=eps, steps=steps, step_size=step_size,
                  random_start=False, **kwargs)


def pgd(surrogates, x, y, *, eps: float, steps: int = 50, step_size: float | None = None,
        **kwargs) -> torch.Tensor:
    """PGD (Madry et al. 2018): :func:`attack` from a uniformly random point of the ball."""
    return attack(surrogates, x, y, eps=eps, steps=steps, step_size=step_size,
                  random_start=True, **kwargs)


def training_adversary(config: Any) -> Callable[..., torch.Tensor] | None:
    """The PGD adversary (random start) of a training configuration's ``adv_*`` fields, for
    :func:`flatness.training.train`; None when it does not train adversarially."""
    if config.adv_eps <= 0 or config.adv_steps <= 0:
        return None
    step_size = config.adv_step_size or 2.5 * config.adv_eps / config.adv_steps

    def adversary(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
        return attack(model, x, y, eps=config.adv_eps, steps=config.adv_steps,
                      step_size=step_size, norm=config.adv_norm, random_start=True,
                      generator=generator)
    return adversary
