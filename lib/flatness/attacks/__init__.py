"""Adversarial attacks and transferability evaluation.

- :func:`attack` (with :func:`bim`, :func:`pgd`): iterative L-inf / L2 attacks on a surrogate
  or an ensemble, with composable techniques (:mod:`flatness.attacks.techniques`).
- :func:`select_correct`, :func:`success_rates`, :func:`aggregate_seeds`: the evaluation.
- :func:`training_adversary`: adversarial training's PGD, handed to the training engine.
- :func:`lgv_collect`: LGV surrogate weights; :class:`TransferResult`, :func:`save_adversarial`.
"""

from flatness.attacks._model import check_class_counts
from flatness.attacks.evaluate import aggregate_seeds, predict, select_correct, success_rates
from flatness.attacks.iterative import attack, bim, check_images, pgd, training_adversary
from flatness.attacks.lgv import lgv_collect
from flatness.attacks.result import TransferResult, load_adversarial, save_adversarial
from flatness.attacks.techniques import (
    TECHNIQUES,
    GhostNetwork,
    InputDiversity,
    LinearBackprop,
    Momentum,
    SkipGradient,
    Technique,
    TranslationInvariance,
    parse_techniques,
)

__all__ = [
    "TECHNIQUES", "GhostNetwork", "InputDiversity", "LinearBackprop", "Momentum", "SkipGradient",
    "Technique", "TransferResult", "TranslationInvariance", "aggregate_seeds", "attack", "bim",
    "check_class_counts", "check_images", "lgv_collect", "load_adversarial", "parse_techniques",
    "pgd", "predict", "save_adversarial", "select_correct", "success_rates", "training_adversary",
]
