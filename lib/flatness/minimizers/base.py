"""The step API every surrogate-training minimizer implements.

The training loop never changes between minimizers. For each batch it builds a *closure*
that zeroes nothing, runs forward and backward on the batch, and returns the (detached) loss::

    def closure() -> torch.Tensor:
        with autocast(device):
            loss = criterion(model(x), y)
        loss.backward()
        return loss.detach()

    minimizer.zero_grad(set_to_none=True)
    loss = minimizer.step(closure)

A one-pass minimizer (SGD) calls the closure once; a two-pass one (SAM and its family) calls
it at the current weights, perturbs them, zeroes the gradients and calls it again inside
:func:`frozen_bn_stats` so that the perturbed pass does not update BatchNorm running
statistics, then restores the weights and lets the base optimizer step. The base optimizer
(SGD with momentum and weight decay) owns ``param_groups``, so learning-rate schedules act on
it unchanged.

At the end of each epoch the engine calls :meth:`Minimizer.end_epoch`, which returns the model
whose weights are evaluated and checkpointed for that epoch (SWA returns its running average
with recomputed BatchNorm statistics; everything else returns the model itself).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import nn

Closure = Callable[[], torch.Tensor]
BatchNormUpdate = Callable[[nn.Module], None]


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Run forward passes in train mode without updating BatchNorm running statistics.

    Sets each BatchNorm's ``momentum`` to 0 (the running average keeps its value) and undoes
    it on exit; ``num_batches_tracked`` is restored too.
    """
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            saved.append((module, module.momentum, module.num_batches_tracked.clone()
                          if module.num_batches_tracked is not None else None))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum, tracked in saved:
            module.momentum = momentum
            if tracked is not None:
                module.num_batches_tracked.copy_(tracked)


class Minimizer:
    """Base class: wraps a base optimizer and a model; subclasses override :meth:`step`.

    Subclasses set ``name`` and ``hyperparameters`` (name -> default) and validate their
    hyper-parameters in ``__init__`` with a clear :class:`~flatness.errors.FlatnessError`.
    """

    name: ClassVar[str] = "base"
    hyperparameters: ClassVar[dict[str, Any]] = {}
    passes: ClassVar[float] = 1.0  # forward-backward passes per step, for documentation

    def __init__(self, model: nn.Module, base_optimizer: torch.optim.Optimizer) -> None:
        self.model = model
        self.base_optimizer = base_optimizer
        self.state: dict[str, Any] = {}

    # -- optimizer-like surface -------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base_optimizer.param_groups

    def params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Closure) -> torch.Tensor:
        loss = closure()
        self.base_optimizer.step()
        return loss

    def end_epoch(self, epoch: int, update_bn: BatchNormUpdate) -> nn.Module:
        """Called after each epoch (1-based); returns the model to evaluate and checkpoint."""
        return self.model

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base_optimizer.state_dict(), "minimizer": self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state["base"])
        self._load_extra_state(state.get("minimizer", {}))

    def _extra_state(self) -> dict[str, Any]:
        """Minimizer-specific state to checkpoint for exact resumption (tensors allowed)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


class SGD(Minimizer):
    """The baseline: one forward-backward pass, then the base optimizer's step."""

    name = "sgd"
    hyperparameters: ClassVar[dict[str, Any]] = {}
