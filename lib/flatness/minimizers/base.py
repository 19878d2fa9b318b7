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

from flatness.errors import FlatnessError

Closure = Callable[[], torch.Tensor]
BatchNormUpdate = Callable[[nn.Module], None]


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Run forward passes in train mode without updating BatchNorm running statistics.

    Turns ``track_running_stats`` off on every tracking BatchNorm and back on at exit: in train
    mode the layer then normalises with the batch statistics (exactly as before) but neither
    its running averages nor ``num_batches_tracked`` change. Costs no tensor operation, and
    holds for any ``momentum`` (including ``None``, the cumulative average).
    """
    frozen = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for module in frozen:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in frozen:
            module.track_running_stats = True


class Minimizer:
    """Base class: wraps a base optimizer and a model; subclasses override :meth:`step`.

    Subclasses set ``name``, ``hyperparameters`` (name -> default; the default's type is the
    parameter's type), ``description`` and ``reference``, and check their values in
    :meth:`_validate` with :meth:`_require`. The merged values are ``self.hp``.
    """

    name: ClassVar[str] = "base"
    hyperparameters: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    passes: ClassVar[float] = 1.0  # forward-backward passes per step, for documentation
    eps: ClassVar[float] = 1e-12  # added to norms in denominators (as pytorch-optimizer does)
    # bumped when a change to the code alters the weights a minimizer trains; above 1 it enters
    # the run's key (TrainConfig.to_dict), so runs trained by the earlier code are not reused
    revision: ClassVar[int] = 1

    def __init__(self, model: nn.Module, base_optimizer: torch.optim.Optimizer,
                 **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(self.hyperparameters)
        if unknown:
            raise FlatnessError(
                f"minimizer {self.name!r} has no hyper-parameter {', '.join(sorted(unknown))}; "
                f"it takes: {', '.join(self.hyperparameters) or 'none'}")
        self.model = model
        self.base_optimizer = base_optimizer
        self.hp: dict[str, Any] = {**self.hyperparameters, **hyperparameters}
        for key, value in self.hp.items():
            self._require(_same_kind(value, self.hyperparameters[key]),
                          f"{key}={value!r} should be a {type(self.hyperparameters[key]).__name__}")
        self._validate()
        self.state: dict[str, Any] = {}

    def _validate(self) -> None:
        """Check ``self.hp``; raise through :meth:`_require`."""

    def _require(self, condition: bool, problem: str) -> None:
        """Raise a :class:`FlatnessError` naming this minimizer and the problem."""
        if not condition:
            raise FlatnessError(f"minimizer {self.name!r}: {problem}")

    # -- optimizer-like surface -------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base_optimizer.param_groups

    def params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def params_with_grad(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The parameters that received a gradient from the last closure, and their grads."""
        params = [p for p in self.params() if p.grad is not None]
        return params, [p.grad for p in params]

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

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hp.items())
        return f"{type(self).__name__}({hp})"


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` fits a hyper-parameter whose default is ``default`` (ints fit floats)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


class SGD(Minimizer):
    """The baseline: one forward-backward pass, then the base optimizer's step."""

    name = "sgd"
    hyperparameters: ClassVar[dict[str, Any]] = {}
    description = "the base optimizer alone (SGD with momentum and weight decay)"
    reference = "Robbins & Monro 1951; early stopping is an evaluation choice, not a minimizer"
