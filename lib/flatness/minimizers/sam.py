"""SAM (Foret et al. 2021): descend with the gradient taken at the worst nearby weights.

One step: ``g = grad L(w)``; ``e = rho g / ||g||``; ``w <- base_step(w, grad L(w + e))``.
With ``adaptive=True`` the neighbourhood is scaled by the weights' magnitudes (ASAM with
``eta = 0``, the convention of pytorch-optimizer's ``SAM(adaptive=True)``; see
:mod:`flatness.minimizers.asam` for the paper's ASAM). :class:`SharpnessAware` holds the part
every two-pass minimizer shares: take the gradient at perturbed weights without touching the
BatchNorm running statistics, then put the weights back.

We write our own instead of using pytorch-optimizer's ``SAM`` because the training engine's
closure/BatchNorm/checkpoint contract differs (its ``SAM`` expects the first pass done outside
``step``); pytorch-optimizer is the test oracle (tests/test_minimizers.py).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from flatness.minimizers import _ops
from flatness.minimizers.base import Closure, Minimizer, frozen_bn_stats


class SharpnessAware(Minimizer):
    """Shared machinery of the perturb-and-re-evaluate minimizers."""

    passes = 2.0

    def _validate(self) -> None:
        for key in ("rho", "rho_prime"):
            if key in self.hp:
                value = self.hp[key]
                self._require(math.isfinite(value) and value >= 0,
                              f"{key}={value} must be a finite number >= 0 (no upper cap: "
                              "large-neighbourhood variants use 1.0, 5.0, ...)")

    def _gradient_at(self, closure: Closure, params: _ops.Tensors,
                     shift: _ops.Tensors) -> _ops.Tensors:
        """Gradients of the closure's loss at ``params + shift``; ``params`` are restored.

        The pass runs inside :func:`frozen_bn_stats`, so BatchNorm running statistics keep the
        values of the first (unperturbed) pass. Leaves the new gradients in ``p.grad``.
        """
        with torch.no_grad():
            torch._foreach_add_(params, shift)
        self.zero_grad(set_to_none=True)
        with frozen_bn_stats(self.model), torch.enable_grad():
            closure()
        with torch.no_grad():
            torch._foreach_sub_(params, shift)
        return [p.grad for p in params]


class SAM(SharpnessAware):
    """Sharpness-aware minimization: ``w <- base_step(grad L(w + rho g/||g||))``."""

    name = "sam"
    hyperparameters: ClassVar[dict[str, Any]] = {"rho": 0.05, "adaptive": False}
    description = "sharpness-aware minimization; adaptive=true scales the ball by |w| (eta 0)"
    reference = "Foret et al. 2021, Sharpness-Aware Minimization (ICLR), Eq. 2 and Alg. 1"

    def _eta(self) -> float | None:
        """ASAM's ``eta`` when the neighbourhood is weight-adaptive, else ``None``."""
        return 0.0 if self.hp["adaptive"] else None

    def perturbation(self, params: _ops.Tensors, grads: _ops.Tensors) -> _ops.Tensors:
        """``e = rho g / ||g||``, or ``rho T^2 g / ||T g||`` with ``T = |w| + eta``."""
        rho, eta = self.hp["rho"], self._eta()
        if eta is None:
            return _ops.scaled(grads, rho / (_ops.global_norm(grads) + self.eps))
        t_w = torch._foreach_abs(params)
        if eta:
            torch._foreach_add_(t_w, eta)
        shift = torch._foreach_mul(t_w, grads)
        scale = rho / (_ops.global_norm(shift) + self.eps)
        torch._foreach_mul_(shift, t_w)
        torch._foreach_mul_(shift, scale)
        return shift

    def step(self, closure: Closure) -> torch.Tensor:
        loss = closure()
        params, grads = self.params_with_grad()
        with torch.no_grad():
            shift = self.perturbation(params, grads)
        self._gradient_at(closure, params, shift)
        self.base_optimizer.step()
        return loss
