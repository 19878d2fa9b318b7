"""SAGM (Wang et al. 2023): minimise the loss, the perturbed loss and the gap between them by
matching their gradients.

With ``g = grad L(w)``, the perturbed point is ``w + rho g/||g|| - alpha g`` (the SAM ascent
taken from one small descent step ahead, which aligns the two gradients), and the update
direction is the mean of ``g`` and the gradient ``g_p`` at that point:
``w <- base_step((g + g_p) / 2)``. We follow the authors' released code
(github.com/Wang-pengfei/SAGM, ``perturb_weights`` and ``gradient_decompose``) for the 1/2,
which the paper's objective ``L + L_p`` writes as a plain sum (a factor 2 on the learning rate).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from flatness.minimizers import _ops
from flatness.minimizers.base import Closure
from flatness.minimizers.sam import SharpnessAware


class SAGM(SharpnessAware):
    """Sharpness-aware gradient matching."""

    name = "sagm"
    hyperparameters: ClassVar[dict[str, Any]] = {"rho": 0.05, "alpha": 0.001}
    description = "sharpness-aware gradient matching: mean of g and g at w + rho g/|g| - alpha g"
    reference = "Wang et al. 2023, Sharpness-Aware Gradient Matching for Domain " \
        "Generalization (CVPR), Alg. 1"

    def _validate(self) -> None:
        super()._validate()
        self._require(self.hp["alpha"] >= 0, f"alpha={self.hp['alpha']} must be >= 0")

    def step(self, closure: Closure) -> torch.Tensor:
        loss = closure()
        params, g = self.params_with_grad()
        with torch.no_grad():
            scale = self.hp["rho"] / (_ops.global_norm(g) + self.eps) - self.hp["alpha"]
            shift = _ops.scaled(g, scale)
        g_p = self._gradient_at(closure, params, shift)
        with torch.no_grad():
            torch._foreach_add_(g_p, g)
            torch._foreach_mul_(g_p, 0.5)
        self.base_optimizer.step()
        return loss
