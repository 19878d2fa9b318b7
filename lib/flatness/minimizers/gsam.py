"""GSAM (Zhuang et al. 2022): SAM plus an ascent on the surrogate gap, orthogonal to SAM's
descent direction.

With ``g = grad f(w)`` and ``g_p = grad f(w + rho g/||g||)`` (Algorithm 1 of the paper):
``g_perp = g - (<g, g_p> / ||g_p||^2) g_p`` and the base optimizer steps along
``g_p - alpha g_perp``. The paper ties ``rho_t`` to the learning rate; we keep ``rho``
constant, so that rho sweeps compare across minimizers (a constant schedule is the paper's
special case ``rho_max = rho_min``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from flatness.minimizers import _ops
from flatness.minimizers.base import Closure
from flatness.minimizers.sam import SharpnessAware


class GSAM(SharpnessAware):
    """Surrogate-gap guided SAM."""

    name = "gsam"
    hyperparameters: ClassVar[dict[str, Any]] = {"rho": 0.05, "alpha": 0.4}
    description = "surrogate-gap guided SAM: SAM step minus alpha times g's part orthogonal to it"
    reference = ("Zhuang et al. 2022, Surrogate Gap Guided Sharpness-Aware Minimization (ICLR), "
                 "Alg. 1")

    def _validate(self) -> None:
        super()._validate()
        self._require(0 <= self.hp["alpha"] <= 1, f"alpha={self.hp['alpha']} must be in [0, 1]")

    def step(self, closure: Closure) -> torch.Tensor:
        rho, alpha = self.hp["rho"], self.hp["alpha"]
        loss = closure()
        params, g = self.params_with_grad()
        with torch.no_grad():
            g_norm = _ops.global_norm(g)
            shift = _ops.scaled(g, rho / (g_norm + self.eps))
        g_p = self._gradient_at(closure, params, shift)
        with torch.no_grad():
            g_p_norm = _ops.global_norm(g_p)
            parallel = _ops.dot(g, g_p, g_norm, g_p_norm) / (g_p_norm.square() + self.eps)
            # g_p - alpha (g - parallel g_p) = (1 + alpha parallel) g_p - alpha g, in p.grad
            torch._foreach_mul_(g_p, 1 + alpha * parallel)
            torch._foreach_add_(g_p, g, alpha=-alpha)
        self.base_optimizer.step()
        return loss
