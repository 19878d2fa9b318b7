"""Chapter 5, complementarity: the best sharpness-aware minimizers are competitive with other
surrogate-training methods (LGV, slight adversarial training, SWA, early stopping) and add to
attack-time transferability techniques and to LGV (PAPER.md finding 5).

Part A compares surrogate-training methods under plain BIM on the same targets and images:
fully trained SGD, early-stopped SGD (the best epoch of the standard run's transfer curve,
the very job of chapter 2), SAM, l-SAM (SAM with a large rho), LGV (weights collected along
constant high-learning-rate SGD from the fully trained SGD surrogate), SWA and SAT (slight
adversarial training, Springer et al. 2021). Part B crosses the surrogates SGD, SAM and l-SAM
with each attack-time technique (MI, DI, TI, SGM, ghost networks, LinBP) and with LGV
(LGV + l-SAM: LGV collected from the l-SAM surrogate); l-SAM "complements" a technique when
its gain over SGD under that technique stays positive.

This module is the chapter's design: its parameters and the jobs they imply. The summary and
the claims are :mod:`flatness.study.analysis.complementarity`'s, the figures and tables
:mod:`flatness.plots.complementarity`'s.
"""

from __future__ import annotations

from typing import Any

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import AnalysisSummary, Chapter
from flatness.study.common import (
    SAM_RHO,
    check_names,
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    lsam,
    minimizer_surrogate,
    sam,
    scale_attack,
    standard_sgd,
    surrogate,
)
from flatness.study.context import StudySpec
from flatness.study.jobs import Job, LGVJob, TransferJob
from flatness.training import TrainConfig

#: Slight adversarial training (Springer et al. 2021): L2 PGD with a small eps in [0, 1] pixels.
SAT_EPS = 0.1
SAT_NORM = "l2"
#: Surrogate-training methods of Part A, in display order.
METHODS = ("sgd", "early_stopped", "sam", "lsam", "lgv", "swa", "sat")
#: Surrogates crossed with the techniques in Part B (trained methods only).
SURROGATES = ("sgd", "sam", "lsam")
#: Part B's columns besides the techniques: plain BIM and LGV from the row's surrogate.
PLAIN, LGV = "none", "lgv"
#: Methods that need training runs of their own (SAT; SWA's are chapter 4's): they train
#: ``baseline_seeds``, every seed by default, fewer when a user wants the chapter cheaper.
OWN_RUNS = ("swa", "sat")
LABELS = {"sgd": "SGD (fully trained)", "early_stopped": "SGD (early stopped)", "sam": "SAM",
          "lsam": "l-SAM", "lgv": "LGV", "swa": "SWA", "sat": "SAT"}


def defaults(scale: Scale) -> dict[str, Any]:
    """The scale's design (its ``complementarity`` section, its l-SAM rho)."""
    design = scale.complementarity
    return {
        "seeds": default_seeds(scale),
        "baseline_seeds": default_seeds(scale),
        "methods": list(METHODS),
        "surrogates": list(SURROGATES),
        "techniques": list(design.techniques),
        "combine_lgv": True,
        "sam_rho": SAM_RHO,
        "lsam_rho": scale.lsam_rho,
        "sat_norm": SAT_NORM,
        "sat_eps": SAT_EPS,
        "sat_steps": design.sat_steps,
        # LGV (Gubri et al. 2022): its epochs and models per scale, twice the initial lr
        "lgv_epochs": design.lgv_epochs,
        "lgv_models": design.lgv_models,
        "lgv_lr_factor": 2.0,
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
    }


def _number(params: dict[str, Any], key: str, *, positive: bool = False) -> None:
    value = params[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise FlatnessError(f"{key} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise FlatnessError(f"{key} must be {'> 0' if positive else '>= 0'}, got {value!r}")


def _count(params: dict[str, Any], key: str) -> None:
    value = params[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FlatnessError(f"{key} must be an integer >= 1, got {value!r}")


def validate(params: dict[str, Any]) -> None:
    from flatness.attacks import TECHNIQUES as KNOWN_TECHNIQUES

    check_seeds(params)
    check_seeds({"seeds": params["baseline_seeds"]})
    if not set(params["baseline_seeds"]) <= set(params["seeds"]):
        raise FlatnessError(f"baseline_seeds {params['baseline_seeds']} must be among seeds "
                            f"{params['seeds']} (differences are paired by seed)")
    check_names(params, "methods", METHODS, what="method")
    check_names(params, "surrogates", SURROGATES, what="surrogate")
    check_names(params, "techniques", tuple(KNOWN_TECHNIQUES), what="technique")
    if not params["methods"]:
        raise FlatnessError(f"methods must name at least one of: {', '.join(METHODS)}")
    for key in ("sam_rho", "lsam_rho", "sat_eps"):
        _number(params, key)
    _number(params, "eps", positive=True)
    _number(params, "lgv_lr_factor", positive=True)
    for key in ("lgv_epochs", "lgv_models", "attack_steps", "sat_steps"):
        _count(params, key)
    if params["sat_norm"] not in {"l2", "linf"}:
        raise FlatnessError(f"sat_norm must be 'l2' or 'linf', got {params['sat_norm']!r}")
    if not isinstance(params["combine_lgv"], bool):
        raise FlatnessError(f"combine_lgv must be True or False, got {params['combine_lgv']!r}")


# -- the jobs ---------------------------------------------------------------------------------
def config(scale: Scale, params: dict[str, Any], method: str, seed: int) -> TrainConfig:
    """The training run behind a trained method (early stopping and LGV use SGD's)."""
    if method in {"sgd", "early_stopped", "lgv"}:
        return standard_sgd(scale, seed)  # chapters 2, 3 and 4 train the same run
    if method == "sam":
        return sam(scale, seed, params["sam_rho"])
    if method == "lsam":
        return lsam(scale, seed, params["lsam_rho"])
    if method == "swa":
        return minimizer_surrogate(scale, seed, "swa")  # chapter 4's SWA runs
    if method == "sat":
        return surrogate(scale, seed, adv_norm=params["sat_norm"],
                         adv_eps=float(params["sat_eps"]), adv_steps=int(params["sat_steps"]))
    raise FlatnessError(f"unknown method {method!r}; choose among: {', '.join(METHODS)}")


def curve_job(scale: Scale, params: dict[str, Any], seed: int) -> TransferJob:
    """Chapter 2's standard-schedule transfer curve (every checkpoint): early stopping."""
    return TransferJob(standard_sgd(scale, seed), scale_attack(scale, params),
                       epochs=checkpoint_epochs(scale))


def lgv_job(scale: Scale, params: dict[str, Any], base: str, seed: int) -> LGVJob:
    """LGV weights collected from the fully trained ``base`` surrogate."""
    return LGVJob(config(scale, params, base, seed), epochs=int(params["lgv_epochs"]),
                  lr_factor=float(params["lgv_lr_factor"]), n_models=int(params["lgv_models"]))


def _curve_has_final(scale: Scale) -> bool:
    return scale.epochs in checkpoint_epochs(scale)


def cell_job(scale: Scale, params: dict[str, Any], row: str, column: str, seed: int
             ) -> TransferJob:
    """The job behind one cell: surrogate method ``row`` attacked with technique ``column``
    (``"none"``: plain BIM; ``"lgv"``: LGV collected from the row's surrogate).

    Fully trained SGD under plain BIM is the last point of the early-stopping curve when the
    curve reaches the final epoch (one attack instead of two).
    """
    if row == "early_stopped":
        return curve_job(scale, params, seed)
    if row == "lgv":  # Part A's LGV is Part B's (sgd, lgv) cell
        row, column = "sgd", LGV
    if row == "sgd" and column == PLAIN and _curve_has_final(scale):
        return curve_job(scale, params, seed)
    base = config(scale, params, row, seed)
    if column == LGV:
        return TransferJob(base, scale_attack(scale, params), lgv=lgv_job(scale, params, row, seed))
    techniques = () if column == PLAIN else (column,)
    return TransferJob(base, scale_attack(scale, params, techniques))


def columns(params: dict[str, Any]) -> list[str]:
    """Part B's columns: plain BIM, each technique, then LGV when combined."""
    return [PLAIN, *params["techniques"], *([LGV] if params["combine_lgv"] else [])]


def cells(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (row, column) cell the chapter computes: Part A's methods under plain BIM, then
    Part B's surrogates under each column."""
    part_a = [(m, PLAIN) for m in params["methods"]]
    part_b = [(r, c) for r in params["surrogates"] for c in columns(params)]
    return list(dict.fromkeys(part_a + part_b))


def seeds_for(row: str, params: dict[str, Any]) -> list[int]:
    """The training seeds of a method (``baseline_seeds`` for SWA and SAT)."""
    return params["baseline_seeds"] if row in OWN_RUNS else params["seeds"]


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    planned = [cell_job(spec.scale, params, row, column, seed)
               for row, column in cells(params) for seed in seeds_for(row, params)]
    return list({job.key(): job for job in planned}.values())


CHAPTER = Chapter(
    name="complementarity",
    title="Complementarity",
    notebook="05_complementarity",
    defaults=defaults,
    jobs=jobs,
    summarize=AnalysisSummary("complementarity"),
    validate=validate,
)
