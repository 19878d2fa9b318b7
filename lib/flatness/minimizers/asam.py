"""ASAM (Kwon et al. 2021): SAM in a neighbourhood scaled by the weights' magnitudes.

``T_w = |w| + eta`` (element-wise), ``e = rho T_w^2 g / ||T_w g||``, then the SAM update.
The paper's CIFAR-10 setting is ``rho = 0.5`` (ten times SAM's, because the ball is scaled
by |w|) and ``eta = 0.01``. We scale every parameter (as pytorch-optimizer and the SAM
reference code do); the authors' code leaves biases unscaled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flatness.minimizers.sam import SAM


class ASAM(SAM):
    """Adaptive SAM: the SAM step with the ``T_w``-scaled perturbation."""

    name = "asam"
    hyperparameters: ClassVar[dict[str, Any]] = {"rho": 0.5, "eta": 0.01}
    description = "adaptive SAM: scale-invariant ball T_w = |w| + eta"
    reference = "Kwon et al. 2021, ASAM: Adaptive Sharpness-Aware Minimization (ICML), Eq. 9"

    def _validate(self) -> None:
        super()._validate()
        self._require(self.hp["eta"] >= 0, f"eta={self.hp['eta']} must be >= 0")

    def _eta(self) -> float | None:
        return float(self.hp["eta"])
