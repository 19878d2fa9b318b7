"""Chapter 1, robust and non-robust features: early stopping helps transferability whether the
surrogate learns from robust or non-robust features, and towards targets that learned either
(PAPER.md finding 1, Gubri et al. Figs. 2-3), so the robust/non-robust hypothesis does not
explain it.

The datasets are Ilyas et al. (2019)'s, built from CIFAR-10 by :mod:`flatness.robust`:
``D_R`` and ``D_NR`` invert a model's penultimate representation (a robust, L2-adversarially
trained model for ``D_R``, a standard one for ``D_NR``; their section 3.1), while ``D_rand``
and ``D_det`` are a standard model's targeted adversarial examples relabelled with the target
class (random, or ``y + 1``; section 3.2).

- *Fig. 2 analogue*: surrogates (the scale's recipe) trained on CIFAR-10 (the images the
  derived datasets were built from), ``D_R`` and ``D_NR``; every checkpoint is attacked
  (BIM L-inf) and scored on the CIFAR-10 target zoo.
- *Fig. 3 analogue*: the standard CIFAR-10 surrogate (chapter 2's run) attacked at each
  checkpoint towards targets of its own architecture trained on ``D_R``, ``D_NR``, ``D_rand``
  and ``D_det``, with the paper's budget per target (16/255, 2/255, 1/255, 1/255).

Dataset construction is a job of its own (:class:`~flatness.study.jobs.DatasetJob`), on which
the training jobs of derived datasets depend, so that a distributed executor builds each
dataset once before the runs that read it.

This module is the chapter's design: its parameters and the jobs they imply. The summary and
the claims are :mod:`flatness.study.analysis.robust_features`'s, the figures and tables
:mod:`flatness.plots.robust_features`'s.
"""

from __future__ import annotations

from typing import Any

from flatness.errors import FlatnessError
from flatness.robust.params import KINDS, RobustParams, dataset_scale_label
from flatness.scales import Scale
from flatness.study.chapter import AnalysisSummary, Chapter
from flatness.study.common import (
    check_names,
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    scale_attack,
    standard_sgd,
    surrogate,
)
from flatness.study.context import StudySpec
from flatness.study.jobs import (
    AttackSpec,
    DatasetJob,
    Job,
    RobustnessJob,
    TrainJob,
    TransferJob,
)
from flatness.training import TrainConfig

CIFAR10 = "cifar10"
#: Training sets of the Fig. 2 surrogates (CIFAR-10: the derived datasets' source images).
SURROGATE_DATASETS = (CIFAR10, "d_r", "d_nr")
#: Training sets of the Fig. 3 targets.
TARGET_DATASETS = KINDS
#: The paper's budget per target (confirmed): a robust target needs a much larger eps.
TARGET_EPS = {"d_r": 16 / 255, "d_nr": 2 / 255, "d_rand": 1 / 255, "d_det": 1 / 255}
#: L2 budgets of the robustness check (Ilyas et al. Fig. 2 evaluate eps 0.25 and 0.5).
ROBUSTNESS_EPS = (0.25, 0.5)
ROBUSTNESS_STEPS = 20
LABELS = {CIFAR10: "CIFAR-10", "d_r": "D_R", "d_nr": "D_NR", "d_rand": "D_rand",
          "d_det": "D_det"}


# -- dataset jobs -----------------------------------------------------------------------------
def dataset_name(kind: str, scale: Scale) -> str:
    """The registry name of derived dataset ``kind`` at ``scale`` (``"d_r@cpu"``; with the
    overridden fields that change the dataset, ``"d_r@cpu[robust_dataset_size=1000]"``)."""
    return CIFAR10 if kind == CIFAR10 else f"{kind}@{dataset_scale_label(scale)}"


# -- parameters -------------------------------------------------------------------------------
def every_kth(epochs: tuple[int, ...], k: int) -> list[int]:
    """Every ``k``-th checkpoint, counted back from the last one (which is always kept)."""
    return sorted(epochs[::-1][::max(1, k)])


def defaults(scale: Scale) -> dict[str, Any]:
    """The scale's design (its ``robust_features`` section: the Fig. 3 checkpoints)."""
    checkpoints = checkpoint_epochs(scale)
    return {
        "seeds": default_seeds(scale),
        "surrogate_datasets": list(SURROGATE_DATASETS),
        "target_datasets": list(TARGET_DATASETS),
        "target_eps": dict(TARGET_EPS),
        "epochs": list(checkpoints),
        "fig3_epochs": every_kth(checkpoints, scale.robust_features.fig3_every),
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
        # Ilyas et al.'s check of D_R: white-box L2 PGD accuracy of every surrogate
        "robustness_eps": list(ROBUSTNESS_EPS),
        "robustness_images": min(1000, scale.eval_subset or 1000),
    }


def _positive(key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise FlatnessError(f"{key} must be a number, got {value!r} (e.g. 4/255 = {4 / 255:.4f})")
    if value <= 0:
        raise FlatnessError(f"{key} must be > 0, got {value!r}")


def _epoch_list(params: dict[str, Any], key: str) -> None:
    values = params[key]
    if (not isinstance(values, list) or not values or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in values)):
        raise FlatnessError(f"{key} must be a non-empty list of checkpoint epochs >= 1, "
                            f"got {values!r}")


def validate(params: dict[str, Any]) -> None:
    check_seeds(params)
    check_names(params, "surrogate_datasets", SURROGATE_DATASETS, what="dataset",
                non_empty=True)
    check_names(params, "target_datasets", TARGET_DATASETS, what="dataset", non_empty=True)
    target_eps = params["target_eps"]
    if not isinstance(target_eps, dict):
        raise FlatnessError(f"target_eps must map a target dataset to its eps, got {target_eps!r}")
    unknown = sorted(set(target_eps) - set(TARGET_DATASETS))
    if unknown:
        raise FlatnessError(f"target_eps names unknown dataset {', '.join(unknown)}; "
                            f"choose among: {', '.join(TARGET_DATASETS)}")
    missing = [d for d in params["target_datasets"] if d not in target_eps]
    if missing:
        raise FlatnessError(f"target_eps has no budget for {', '.join(missing)}")
    for name, eps in target_eps.items():
        _positive(f"target_eps[{name}]", eps)
    _positive("eps", params["eps"])
    steps = params["attack_steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise FlatnessError(f"attack_steps must be an integer >= 1, got {steps!r}")
    _epoch_list(params, "epochs")
    _epoch_list(params, "fig3_epochs")
    budgets = params["robustness_eps"]
    if not isinstance(budgets, list) or not budgets:
        raise FlatnessError(f"robustness_eps must be a non-empty list of L2 budgets, "
                            f"got {budgets!r}")
    for eps in budgets:
        _positive("robustness_eps", eps)
    n = params["robustness_images"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise FlatnessError(f"robustness_images must be an integer >= 1, got {n!r}")


def _check_epochs(scale: Scale, params: dict[str, Any]) -> None:
    saved = set(checkpoint_epochs(scale))
    for key in ("epochs", "fig3_epochs"):
        missing = sorted(set(params[key]) - saved)
        if missing:
            raise FlatnessError(f"{key} {missing} are not saved checkpoints at scale "
                                f"{scale.name!r}; choose among {sorted(saved)}")


# -- the jobs ---------------------------------------------------------------------------------
def surrogate_config(scale: Scale, dataset: str, seed: int) -> TrainConfig:
    """The scale's surrogate recipe on ``dataset``; derived datasets are used whole.

    On CIFAR-10 the surrogate trains on the very images the derived datasets were built from,
    as many as they hold (Ilyas et al.'s control); where that is the scale's own training
    subset (gpu, paper) this is chapter 2's standard run.
    """
    if dataset == CIFAR10:
        source = RobustParams.from_scale(scale)
        return surrogate(scale, seed, train_subset=source.size, subset_seed=source.seed)
    return surrogate(scale, seed, dataset=dataset_name(dataset, scale), train_subset=None)


def fig2_job(scale: Scale, params: dict[str, Any], dataset: str, seed: int) -> TransferJob:
    """Surrogate trained on ``dataset``, every checkpoint attacked, CIFAR-10 target zoo."""
    epochs = tuple(params["epochs"])
    config = surrogate_config(scale, dataset, seed)
    return TransferJob(config, scale_attack(scale, params), epochs=epochs)


def fig3_attack(scale: Scale, params: dict[str, Any], target: str) -> AttackSpec:
    return AttackSpec(eps=float(params["target_eps"][target]),
                      steps=int(params["attack_steps"]))


def fig3_job(scale: Scale, params: dict[str, Any], target: str, seed: int) -> TransferJob:
    """The standard surrogate attacked towards a target of its architecture trained on
    ``target`` (with that target's budget)."""
    return TransferJob(standard_sgd(scale, seed), fig3_attack(scale, params, target),
                       epochs=tuple(params["fig3_epochs"]),
                       target_dataset=dataset_name(target, scale),
                       target_specs=(scale.surrogate,))


def robustness_job(scale: Scale, params: dict[str, Any], dataset: str, seed: int
                   ) -> RobustnessJob:
    """White-box L2 robustness of the surrogate trained on ``dataset`` (final epoch)."""
    return RobustnessJob(surrogate_config(scale, dataset, seed),
                         eps=tuple(float(e) for e in params["robustness_eps"]),
                         steps=ROBUSTNESS_STEPS, n_images=int(params["robustness_images"]))


def target_job(scale: Scale, target: str) -> TrainJob:
    """The Fig. 3 target trained on ``target`` (its final natural accuracy is reported)."""
    from flatness.study.targets import target_configs

    (config,) = target_configs(scale, dataset_name(target, scale), (scale.surrogate,))
    return TrainJob(config)


def used_datasets(params: dict[str, Any]) -> list[str]:
    """Derived datasets the chapter needs, in book order."""
    used = set(params["surrogate_datasets"]) | set(params["target_datasets"])
    return [k for k in KINDS if k in used]


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    scale = spec.scale
    _check_epochs(scale, params)
    return [
        *(DatasetJob(dataset_name(k, scale)) for k in used_datasets(params)),
        *(target_job(scale, t) for t in params["target_datasets"]),
        *(fig2_job(scale, params, d, s) for d in params["surrogate_datasets"]
          for s in params["seeds"]),
        *(fig3_job(scale, params, t, s) for t in params["target_datasets"]
          for s in params["seeds"]),
        *(robustness_job(scale, params, d, s) for d in params["surrogate_datasets"]
          for s in params["seeds"]),
    ]


CHAPTER = Chapter(
    name="robust_features",
    title="Robust and non-robust features",
    notebook="01_robust_features",
    defaults=defaults,
    jobs=jobs,
    summarize=AnalysisSummary("robust_features"),
    validate=validate,
)
