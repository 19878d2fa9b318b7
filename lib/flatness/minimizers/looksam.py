"""LookSAM (Liu et al. 2022): SAM every k steps, reusing its ascent information in between.

Every k-th step is a SAM step that also stores the part of the SAM gradient orthogonal to the
plain gradient, ``g_v = g_s - (<g, g_s> / ||g||^2) g``. The other steps take one pass and
descend along ``g + alpha (||g|| / ||g_v||) g_v`` (Algorithm 1 of the paper). ``k = 1`` is SAM.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from flatness.minimizers import _ops
from flatness.minimizers.base import Closure
from flatness.minimizers.sam import SharpnessAware


class LookSAM(SharpnessAware):
    """SAM every ``k`` steps; the stored orthogonal direction ``g_v`` in between."""

    name = "looksam"
    passes = 1.2  # 1 + 1/k passes per step; 1.2 at the default k = 5
    hyperparameters: ClassVar[dict[str, Any]] = {"rho": 0.05, "k": 5, "alpha": 0.7}
    description = "SAM every k steps; reuses the SAM gradient's orthogonal part in between"
    reference = "Liu et al. 2022, Towards Efficient and Scalable Sharpness-Aware Minimization " \
        "(CVPR), Alg. 1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passes = 1 + 1 / self.hp["k"]
        self.steps = 0
        self.g_v: list[torch.Tensor] | None = None
        self.g_v_norm: torch.Tensor | None = None

    def _validate(self) -> None:
        super()._validate()
        self._require(self.hp["k"] >= 1, f"k={self.hp['k']} must be an integer >= 1")
        self._require(self.hp["alpha"] >= 0, f"alpha={self.hp['alpha']} must be >= 0")

    def step(self, closure: Closure) -> torch.Tensor:
        loss = closure()
        params, g = self.params_with_grad()
        if self.steps % self.hp["k"] == 0 or self.g_v is None:
            with torch.no_grad():
                g_norm = _ops.global_norm(g)
                shift = _ops.scaled(g, self.hp["rho"] / (g_norm + self.eps))
            g_s = self._gradient_at(closure, params, shift)  # p.grad = g_s: the SAM step
            with torch.no_grad():
                along = _ops.dot(g, g_s, g_norm, _ops.global_norm(g_s)) / (g_norm.square()
                                                                          + self.eps)
                self.g_v = _ops.scaled(g, -along)
                torch._foreach_add_(self.g_v, g_s)
                self.g_v_norm = _ops.global_norm(self.g_v)
        else:
            with torch.no_grad():
                scale = self.hp["alpha"] * _ops.global_norm(g) / (self.g_v_norm + self.eps)
                torch._foreach_add_(g, _ops.scaled(self.g_v, scale))
        self.steps += 1
        self.base_optimizer.step()
        return loss

    def _extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps, "g_v": self.g_v, "g_v_norm": self.g_v_norm}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.g_v, self.g_v_norm = state.get("g_v"), state.get("g_v_norm")
        if self.g_v is not None:  # onto the parameters' device (checkpoints may load on CPU)
            device = self.params()[0].device
            self.g_v = [v.to(device) for v in self.g_v]
            self.g_v_norm = self.g_v_norm.to(device)
