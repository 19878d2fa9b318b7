"""Chapter 4, minimizers: surrogates trained to minimise loss value *and* sharpness transfer
better than fully trained and early-stopped SGD; large neighbourhoods (l-SAM) transfer best,
often at a cost in natural accuracy (PAPER.md finding 4).

Every minimizer of the scale's design (at the paper's: SAM, ASAM, GSAM, LookSAM, GAM, SAGM,
SWA, and SGD) is trained with the scale's recipe, over a rho grid where it has a rho, for
several seeds. The final epoch of each surrogate is attacked (BIM L-inf) and scored on the
target zoo; natural accuracy comes from the run's metrics and sharpness (top Hessian
eigenvalue, trace) from the final checkpoint, with the scale's Hessian settings (SGD's
sharpness over training is chapter 3's very job). The baselines are fully trained SGD and
early-stopped SGD: the best epoch of the standard SGD run's transfer curve (chapter 2's job).
Choosing that epoch on the very targets it is scored on is optimistic for early stopping, as
in the paper. l-SAM is SAM with the largest rho of its grid.

This module is the chapter's design: its parameters and the jobs they imply. From the notebook
to the BIM step, four files: ``notebooks/04_minimizers.ipynb`` passes this module's
:data:`CHAPTER` to :func:`~flatness.study.chapter.chapter_result` (which serves the committed
or cached result, else runs ``CHAPTER.jobs`` and summarises their outputs); here, :func:`jobs`
plans a :class:`~flatness.study.jobs.TransferJob` per surrogate and seed (:func:`final_job`);
``TransferJob.compute`` (``study/jobs.py``) attacks each checkpoint with
:func:`flatness.attacks.attack`, whose BIM update is in ``attacks/iterative.py``. The summary
and the claims are :mod:`flatness.study.analysis.minimizers`'s, the figures
:mod:`flatness.plots.minimizers`'s.
"""

from __future__ import annotations

from typing import Any

from flatness.errors import FlatnessError
from flatness.minimizers import get_minimizer_class
from flatness.scales import Scale
from flatness.study.chapter import AnalysisSummary, Chapter
from flatness.study.common import (
    check_names,
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    hessian_defaults,
    hessian_job,
    minimizer_surrogate,
    scale_attack,
    sgd_sharpness_job,
    standard_sgd,
)
from flatness.study.context import StudySpec
from flatness.study.jobs import Job, SharpnessJob, TransferJob
from flatness.training import TrainConfig


def has_rho(name: str) -> bool:
    return "rho" in get_minimizer_class(name).hyperparameters


def defaults(scale: Scale) -> dict[str, Any]:
    """The scale's design (its ``minimizers`` section; the Hessian settings of chapter 3, so
    that SGD's sharpness is computed once for both)."""
    design = scale.minimizers
    return {
        "seeds": default_seeds(scale),
        "minimizers": list(design.names),
        "rhos": {m: list(r) for m, r in design.rhos.items()},
        "minimizer_seeds": {m: list(v) for m, v in design.seeds.items()},
        "sharpness": True,
        **hessian_defaults(scale),
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def validate(params: dict[str, Any]) -> None:
    from flatness.minimizers import MINIMIZERS

    check_seeds(params)
    names = params["minimizers"]
    if not isinstance(names, list) or not names:
        raise FlatnessError(f"minimizers must be a non-empty list of names among: "
                            f"{', '.join(MINIMIZERS)}")
    check_names(params, "minimizers", tuple(MINIMIZERS), what="minimizer")
    rhos = params["rhos"]
    if not isinstance(rhos, dict):
        raise FlatnessError(f"rhos must map a minimizer to a list of rho, got {rhos!r}")
    for name, grid in rhos.items():
        if name not in MINIMIZERS:
            raise FlatnessError(f"rhos: unknown minimizer {name!r}; choose among: "
                                f"{', '.join(MINIMIZERS)}")
        if not has_rho(name):
            raise FlatnessError(f"rhos: minimizer {name!r} has no rho; remove it from rhos")
        if not isinstance(grid, list) or not grid or not all(_is_number(r) for r in grid):
            raise FlatnessError(f"rhos[{name!r}] must be a non-empty list of numbers, "
                                f"got {grid!r}")
        if any(r < 0 for r in grid):
            raise FlatnessError(f"rhos[{name!r}]: rho must be >= 0, got {grid!r}")
        if len(set(grid)) != len(grid):
            raise FlatnessError(f"rhos[{name!r}] lists a rho twice: {grid!r}")
    per_minimizer = params["minimizer_seeds"]
    if not isinstance(per_minimizer, dict):
        raise FlatnessError("minimizer_seeds must map a minimizer to a list of seeds")
    for name, seeds in per_minimizer.items():
        if name not in MINIMIZERS:
            raise FlatnessError(f"minimizer_seeds: unknown minimizer {name!r}")
        check_seeds({"seeds": seeds})
    if not isinstance(params["sharpness"], bool):
        raise FlatnessError(f"sharpness must be True or False, got {params['sharpness']!r}")
    for key in ("sharpness_images", "sharpness_batch", "trace_samples", "max_iter"):
        value = params[key]
        if key in ("trace_samples", "max_iter") and value is None:
            continue  # the library's adaptive rule
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise FlatnessError(f"{key} must be an integer >= 1, got {value!r}")
    if not _is_number(params["eps"]) or params["eps"] <= 0:
        raise FlatnessError(f"eps must be a number > 0, got {params['eps']!r}")
    steps = params["attack_steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise FlatnessError(f"attack_steps must be an integer >= 1, got {steps!r}")


# -- the surrogates ---------------------------------------------------------------------------
def rho_grid(params: dict[str, Any], name: str) -> list[float | None]:
    """The rhos ``name`` is trained with ([None] for a minimizer without rho; its default rho
    when ``rhos`` does not list it)."""
    if not has_rho(name):
        return [None]
    if name in params["rhos"]:
        return [float(r) for r in params["rhos"][name]]
    return [float(get_minimizer_class(name).hyperparameters["rho"])]


def variants(params: dict[str, Any]) -> list[tuple[str, float | None]]:
    """Every (minimizer, rho) pair, SGD (the fully trained baseline) first."""
    names = ["sgd", *[n for n in params["minimizers"] if n != "sgd"]]
    return [(name, rho) for name in names for rho in rho_grid(params, name)]


def label(name: str, rho: float | None) -> str:
    return name if rho is None else f"{name} ρ={rho:g}"


def seeds_for(params: dict[str, Any], name: str) -> list[int]:
    return list(params["minimizer_seeds"].get(name, params["seeds"]))


def config(scale: Scale, name: str, rho: float | None, seed: int) -> TrainConfig:
    """The training run of one surrogate (same configurations as chapters 2, 3 and 5)."""
    return minimizer_surrogate(scale, seed, name, rho)


def curve_job(scale: Scale, params: dict[str, Any], seed: int) -> TransferJob:
    """Chapter 2's standard-schedule transfer curve (every checkpoint): early stopping."""
    return TransferJob(standard_sgd(scale, seed), scale_attack(scale, params),
                       epochs=checkpoint_epochs(scale))


def final_job(scale: Scale, params: dict[str, Any], name: str, rho: float | None, seed: int
              ) -> TransferJob:
    """The final-epoch attack of one surrogate; fully trained SGD is the last point of the
    early-stopping curve when the curve reaches the final epoch (one attack, not two)."""
    if name == "sgd" and scale.epochs in checkpoint_epochs(scale):
        return curve_job(scale, params, seed)
    return TransferJob(config(scale, name, rho, seed), scale_attack(scale, params))


def sharpness_job(scale: Scale, params: dict[str, Any], name: str, rho: float | None,
                  seed: int) -> SharpnessJob:
    """Top eigenvalue and trace of the final checkpoint. For SGD: chapter 3's job over its
    checkpoints (same key with the scale's ``hessian`` settings), which also gives the
    sharpness of the early-stopped epoch when that epoch is among them."""
    if name == "sgd":
        return sgd_sharpness_job(scale, params, seed, scale.hessian.every)
    return hessian_job(config(scale, name, rho, seed), params)


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    scale = spec.scale
    planned: list[Job] = [curve_job(scale, params, seed) for seed in seeds_for(params, "sgd")]
    for name, rho in variants(params):
        for seed in seeds_for(params, name):
            planned.append(final_job(scale, params, name, rho, seed))
            if params["sharpness"]:
                planned.append(sharpness_job(scale, params, name, rho, seed))
    return list({job.key(): job for job in planned}.values())


CHAPTER = Chapter(
    name="minimizers",
    title="Minimizers",
    notebook="04_minimizers",
    defaults=defaults,
    jobs=jobs,
    summarize=AnalysisSummary("minimizers"),
    validate=validate,
    summary_version=2,  # 2: every surrogate carries its per-seed values (paired claims)
)
