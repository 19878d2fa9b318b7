"""LGV surrogates (Gubri et al. 2022): weights collected along a constant high-learning-rate
SGD run started from a trained model; attacking their ensemble (``ensemble="cycle"``, one
model per attack step as LGV does, or averaged) transfers better than the single model.

The collection is a training-side loop of its own (plain SGD, no schedule, no checkpoints), so
it lives here with the attack that consumes it rather than in the training engine. Like the
engine it steps channels-last, under bf16 autocast where the base run's ``precision`` is bf16
(2.2x the conventional fp32 loop on a native-bf16 CPU, 1.4x at fp32 from the layout alone:
resnet18@0.25, batch 128, one thread, ``benchmarks/lgv_collect.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from flatness.attacks._model import model_device
from flatness.device import autocast, memory_format
from flatness.errors import FlatnessError

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def lgv_collect(model: nn.Module, train_batches_fn: Callable[[], Batches], epochs: int,
                lr: float, n_models: int, *, momentum: float = 0.9, weight_decay: float = 5e-4,
                precision: str | None = None) -> list[nn.Module]:
    """Run ``epochs`` of SGD at constant ``lr`` from a copy of ``model`` (which is not changed)
    and return ``n_models`` copies taken at evenly spaced steps, the last at the end, in eval
    mode. ``train_batches_fn()`` yields one epoch of ``(x, y)`` batches (a sized iterable).
    ``precision``: the base run's resolved training precision (bf16 autocast or fp32); None
    computes as attacks do (bf16 on CUDA only). Weights and their updates stay fp32.

    LGV's defaults on ImageNet: 10 epochs, 4 models per epoch, lr twice the initial one.
    """
    if epochs < 1 or n_models < 1 or lr <= 0:
        raise FlatnessError(
            f"lgv: epochs and n_models must be >= 1 and lr > 0 (got {epochs}, {n_models}, {lr})")
    first = train_batches_fn()
    try:
        per_epoch = len(first)  # type: ignore[arg-type]
    except TypeError:
        raise FlatnessError("lgv: train_batches_fn must return a sized iterable (a DataLoader)"
                            ) from None
    total = epochs * per_epoch
    if total < n_models:
        raise FlatnessError(f"lgv: {total} SGD steps cannot yield {n_models} distinct models")
    collect_at = {round((k + 1) * total / n_models) for k in range(n_models)}
    device = model_device(model)
    layout = memory_format(device, model)
    net = copy.deepcopy(model).to(memory_format=layout).train()
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    collected: list[nn.Module] = []
    step = 0
    for epoch in range(epochs):
        for x, y in first if epoch == 0 else train_batches_fn():
            x = x.to(device, non_blocking=True).contiguous(memory_format=layout)
            y = y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with autocast(device, precision=precision):
                loss = F.cross_entropy(net(x).float(), y)
            loss.backward()
            opt.step()
            step += 1
            if step in collect_at:
                collected.append(copy.deepcopy(net).eval())
    return collected
