"""Build parameters of the Ilyas et al. (2019) datasets, read from a scale, and their identity.

Defaults follow Ilyas et al., "Adversarial Examples Are Not Bugs, They Are Features", appendix C:
robust model adversarially trained with L2 PGD (eps 0.5, 7 steps of 0.1); ``D_R`` / ``D_NR`` by
representation inversion (L2-normalised steps of 0.1, 1000 iterations, start = another random
training image); ``D_rand`` / ``D_det`` by targeted L2 PGD (eps 0.5, steps of 0.1, 100 steps).
A scale sets the sizes (its ``robust_*`` fields); the source models use its surrogate recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from flatness.errors import FlatnessError
from flatness.scales import ModelSpec, Scale, get_scale, scale_from_label, scale_label
from flatness.store import key_of

KINDS: tuple[str, ...] = ("d_r", "d_nr", "d_rand", "d_det")
INVERSION_KINDS = ("d_r", "d_nr")  # representation inversion (robust / standard model)
ATTACK_KINDS = ("d_rand", "d_det")  # targeted adversarial examples, relabelled
STARTS = ("image", "noise")



def _rescale(milestones: tuple[int, ...], epochs: int, new_epochs: int) -> tuple[int, ...]:
    """Learning-rate decay epochs moved to the same fractions of a run of ``new_epochs``."""
    if epochs < 1:
        return ()
    moved = {round(m * new_epochs / epochs) for m in milestones}
    return tuple(sorted(m for m in moved if 1 <= m < new_epochs))


@dataclass(frozen=True)
class RobustParams:
    """Everything that changes the built datasets (hashed into their identity)."""

    scale: str
    size: int | None  # class-balanced subset of the CIFAR-10 training set (None: all 50 000)
    model: ModelSpec  # architecture of both source models
    model_epochs: int
    lr: float
    decay_epochs: tuple[int, ...]
    batch_size: int
    momentum: float
    weight_decay: float
    eval_subset: int | None
    adv_eps: float = 0.5  # robust model: L2 PGD adversarial training
    adv_steps: int = 7
    adv_step_size: float = 0.1  # 7 x 0.1 = 1.4 eps (Ilyas); fewer steps: 2.5 eps / steps
    iterations: int = 1000  # D_R / D_NR: representation inversion
    inversion_step_size: float = 0.1
    start: str = "image"  # "image" (another random training image) or "noise"
    attack_eps: float = 0.5  # D_rand / D_det: targeted L2 PGD
    attack_steps: int = 100
    attack_step_size: float = 0.1
    seed: int = 0
    chunk: int = 500  # images per device batch during construction (no effect on the result)

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise FlatnessError(f"unknown start {self.start!r} for D_R; use one of {STARTS}")
        if self.iterations < 1 or self.attack_steps < 1 or self.model_epochs < 1:
            raise FlatnessError("robust datasets need iterations, attack steps and model epochs "
                                ">= 1; raise robust_iterations / robust_model_epochs")

    @classmethod
    def from_scale(cls, scale: Scale, **overrides: Any) -> RobustParams:
        """The parameters of ``scale`` (robust_* fields; model recipe = the surrogate's)."""
        epochs, adv_steps = scale.robust_model_epochs, scale.robust_adv_steps
        values: dict[str, Any] = dict(
            scale=scale.name,
            size=scale.robust_dataset_size,
            model=scale.surrogate,
            model_epochs=epochs,
            lr=scale.lr,
            decay_epochs=_rescale(scale.decay_epochs, scale.epochs, epochs),
            batch_size=scale.batch_size,
            momentum=scale.momentum,
            weight_decay=scale.weight_decay,
            eval_subset=scale.eval_subset,
            adv_steps=adv_steps,
            adv_step_size=0.1 if adv_steps >= 7 else 2.5 * 0.5 / adv_steps,
            iterations=scale.robust_iterations,
            inversion_step_size=scale.robust_inversion_step_size,
            attack_steps=scale.robust_attack_steps,
        )
        values.update(overrides)
        return cls(**values)

    def relevant(self, kind: str) -> dict[str, Any]:
        """The fields that change dataset ``kind`` beyond its source model (for its key)."""
        if kind not in KINDS:
            raise FlatnessError(f"unknown robust dataset {kind!r}; choose one of {KINDS}")
        base = {"kind": kind, "size": self.size, "seed": self.seed}
        if kind in INVERSION_KINDS:
            return base | {"iterations": self.iterations, "step_size": self.inversion_step_size,
                           "start": self.start}
        return base | {"eps": self.attack_eps, "steps": self.attack_steps,
                       "step_size": self.attack_step_size}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# the Scale fields RobustParams.from_scale reads
SCALE_FIELDS = ("robust_dataset_size", "robust_model_epochs", "robust_iterations",
                "robust_inversion_step_size", "robust_adv_steps", "robust_attack_steps",
                "surrogate", "epochs", "decay_epochs", "lr", "batch_size", "momentum",
                "weight_decay", "eval_subset")


def dataset_scale_label(scale: Scale) -> str:
    """The scale part of a derived dataset's name: ``"cpu"`` when ``scale`` builds the named
    scale's datasets, else with the fields that change them (``"cpu[robust_dataset_size=1000]"``),
    so a name always says which dataset it is, in any process that reads it."""
    params = RobustParams.from_scale(scale)
    if params == RobustParams.from_scale(get_scale(scale.name)):
        return scale.name
    label = scale_label(scale, SCALE_FIELDS)
    if RobustParams.from_scale(scale_from_label(label)) != params:
        raise FlatnessError(f"scale {scale.name!r}: the robust datasets' parameters cannot be "
                            "named by its fields; define a named scale in "
                            "flatness.scales.SCALES instead")
    return label


def dataset_key(kind: str, params: RobustParams, model_run: str, data_source: str) -> str:
    """The store key of what the dataset depends on: its parameters, model run and data copy."""
    return key_of({"params": params.relevant(kind), "model_run": model_run,
                   "data_source": data_source})
