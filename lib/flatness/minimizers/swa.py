"""SWA (Izmailov et al. 2018): average the weights of the last epochs, then recompute the
BatchNorm statistics of the average.

Training steps are the base optimizer's. From epoch ``start`` on, each ``end_epoch`` folds the
current weights into an equal-weight running average (``torch.optim.swa_utils.AveragedModel``)
and recomputes its BatchNorm statistics with the engine's ``update_bn``; that averaged model is
what gets evaluated and checkpointed. ``start`` is an epoch number (>= 1) or a fraction of the
run's ``epochs`` (< 1; the paper starts at 75 % of the budget). The learning rate follows the
engine's schedule (no separate SWA learning rate).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import nn
from torch.optim.swa_utils import AveragedModel

from flatness.minimizers.base import BatchNormUpdate, Minimizer


class SWA(Minimizer):
    """Stochastic weight averaging over epochs, with the BatchNorm update."""

    name = "swa"
    hyperparameters: ClassVar[dict[str, Any]] = {"start": 0.75, "epochs": 0}
    description = "stochastic weight averaging of end-of-epoch weights from epoch `start` on"
    reference = "Izmailov et al. 2018, Averaging Weights Leads to Wider Optima and Better " \
        "Generalization (UAI), Alg. 1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.averaged: AveragedModel | None = None

    def _validate(self) -> None:
        start, epochs = self.hp["start"], self.hp["epochs"]
        self._require(math.isfinite(start) and start > 0,
                      f"start={start} must be an epoch number >= 1 or a fraction in (0, 1)")
        self._require(start < 1 or float(start).is_integer(),
                      f"start={start} must be a whole epoch number when >= 1")
        self._require(start >= 1 or epochs >= 1,
                      f"start={start} is a fraction of training: also pass epochs=N")

    @property
    def start_epoch(self) -> int:
        """The first epoch whose final weights enter the average."""
        start = self.hp["start"]
        return int(start) if start >= 1 else max(1, math.ceil(start * self.hp["epochs"]))

    def end_epoch(self, epoch: int, update_bn: BatchNormUpdate) -> nn.Module:
        if epoch < self.start_epoch:
            return self.model
        if self.averaged is None:
            self.averaged = AveragedModel(self.model)
        self.averaged.update_parameters(self.model)
        update_bn(self.averaged.module)
        return self.averaged.module

    def _extra_state(self) -> dict[str, Any]:
        return {"averaged": None if self.averaged is None else self.averaged.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        averaged = state.get("averaged")
        self.averaged = None
        if averaged is not None:
            self.averaged = AveragedModel(self.model)
            self.averaged.load_state_dict(averaged)
