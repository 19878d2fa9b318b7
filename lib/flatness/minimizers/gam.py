"""GAM (Zhang et al. 2023): seek first-order flatness, a small gradient norm everywhere in the
neighbourhood, together with SAM's zeroth-order flatness.

The accelerated algorithm of the paper's Appendix D (the version its authors release) replaces
Hessian-vector products by finite differences of gradients, four passes per step:

- ``g0 = grad L(w)``; ``g1 = grad L(w + rho' g0/||g0||)`` (SAM gradient);
- ``h = g1 - g0`` (~ rho' times the gradient of ||grad L||); ``w2 = w + rho h/||h||``,
  the first-order adversarial point; ``g2 = grad L(w2)``;
  ``g3 = grad L(w2 + rho' g2/||g2||)``;
- ``d = alpha g1 + (1 - alpha) g3`` and ``m = g0 + |1 - beta| g2``;
- step along ``d - gamma (m - (<m, d>/||d||^2) d)`` (GSAM-style: remove the part of m
  orthogonal to d).

The hyper-parameter names follow the paper (rho = grad_norm_rho, rho' = grad_rho,
alpha = grad_beta_1, beta = grad_beta_0, gamma = grad_gamma in the authors' code, whose
``beta_2 = 1 - beta``, ``beta_3 = 1 - alpha`` conventions we keep); the defaults are the
authors' CIFAR-10 ResNet ones.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from flatness.minimizers import _ops
from flatness.minimizers.base import Closure, frozen_bn_stats
from flatness.minimizers.sam import SharpnessAware


class GAM(SharpnessAware):
    """Gradient-norm aware minimization (accelerated, four passes)."""

    name = "gam"
    passes = 4.0
    hyperparameters: ClassVar[dict[str, Any]] = {
        "rho": 0.2, "rho_prime": 0.03, "alpha": 0.1, "beta": 0.1, "gamma": 0.05}
    description = "gradient-norm aware: first-order flatness (max gradient norm in the ball)"
    reference = "Zhang et al. 2023, Gradient Norm Aware Minimization Seeks First-Order " \
        "Flatness and Improves Generalization (CVPR), App. D"

    def _validate(self) -> None:
        super()._validate()
        for key in ("alpha", "beta", "gamma"):
            self._require(self.hp[key] >= 0, f"{key}={self.hp[key]} must be >= 0")

    def _ascent(self, grads: _ops.Tensors, radius: float) -> _ops.Tensors:
        return _ops.scaled(grads, radius / (_ops.global_norm(grads) + self.eps))

    def step(self, closure: Closure) -> torch.Tensor:
        rho, rho_prime = self.hp["rho"], self.hp["rho_prime"]
        alpha, beta, gamma = self.hp["alpha"], self.hp["beta"], self.hp["gamma"]
        loss = closure()
        params, g0 = self.params_with_grad()
        with torch.no_grad():
            shift = self._ascent(g0, rho_prime)
        g1 = self._gradient_at(closure, params, shift)
        with torch.no_grad():
            to_w2 = self._ascent(torch._foreach_sub(g1, g0), rho)
            torch._foreach_add_(params, to_w2)
        self.zero_grad(set_to_none=True)
        with frozen_bn_stats(self.model), torch.enable_grad():
            closure()
        g2 = [p.grad for p in params]
        with torch.no_grad():
            shift = self._ascent(g2, rho_prime)
        g3 = self._gradient_at(closure, params, shift)
        with torch.no_grad():
            torch._foreach_sub_(params, to_w2)
            d = g3  # d = alpha g1 + (1 - alpha) g3, built in p.grad
            torch._foreach_mul_(d, 1 - alpha)
            torch._foreach_add_(d, g1, alpha=alpha)
            m = torch._foreach_add(g0, g2, alpha=abs(1 - beta))
            d_norm = _ops.global_norm(d)
            along = _ops.dot(m, d, _ops.global_norm(m), d_norm) / (d_norm.square() + self.eps)
            torch._foreach_mul_(d, 1 + gamma * along)
            torch._foreach_add_(d, m, alpha=-gamma)
        self.base_optimizer.step()
        return loss
