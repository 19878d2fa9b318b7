"""Chapter 3, sharpness: the largest Hessian eigenvalue and the Hessian trace drop when the
learning rate decays, then SGD falls into sharper regions while transferability declines
(Fig. 5); early-stopped SGD and l-SAM sit in wider basins than fully trained SGD (Fig. 1).

Two parts, both on the standard SGD surrogate that chapter 2 trains (same jobs, reused):

- *Sharpness over training*: :class:`SharpnessJob` on the checkpoints of every seed, beside
  the :class:`TransferJob` success-rate curve (chapter 2's "standard" schedule).
- *Loss landscapes* of the first seed: 1-D and 2-D slices along filter-normalised random
  directions (Li et al. 2018) of SGD at several epochs (``landscape_epochs``, which include
  the planned early-stopping epoch ``early_epoch``), of SAM at each of ``rhos`` (``lsam_rho``
  is l-SAM), and the linear interpolations early-stopped -> fully trained SGD and fully
  trained SGD -> l-SAM. The three models the flatness claim compares (early-stopped SGD,
  fully trained SGD, l-SAM) are sliced on every seed, so that the claim is decided by
  seed-paired differences like every other.

Jobs are planned before any output exists, so the early-stopped model is a *planned* epoch
(default: a few epochs after the first decay, where chapter 2 finds the peak); the summary
also reports the empirically best epoch of the transfer curve so the reader can check that
the two agree.

This module is the chapter's design: its parameters and the jobs they imply. The summary and
the claims are :mod:`flatness.study.analysis.sharpness`'s, the figures and tables
:mod:`flatness.plots.sharpness`'s.
"""

from __future__ import annotations

from typing import Any

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import AnalysisSummary, Chapter
from flatness.study.common import (
    SAM_RHO,
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    epochs_after_decay,
    hessian_defaults,
    lsam,
    sam,
    scale_attack,
    sgd_sharpness_job,
    standard_sgd,
)
from flatness.study.context import StudySpec
from flatness.study.jobs import Job, LandscapeJob, SharpnessJob, TransferJob
from flatness.training import TrainConfig


# -- parameters -----------------------------------------------------------------------------
def default_early_epoch(scale: Scale) -> int:
    """The planned early-stopping epoch: a few epochs after the first decay."""
    first = scale.decay_epochs[0] if scale.decay_epochs else scale.epochs // 2
    return int(min(scale.epochs, max(1, first + epochs_after_decay(scale))))


def default_landscape_epochs(scale: Scale, early_epoch: int) -> list[int]:
    """SGD epochs whose landscape the epoch slider shows: before the first decay, the
    early-stopping epoch, a few epochs after each later decay, and the final epoch."""
    few = epochs_after_decay(scale)
    epochs = {early_epoch, scale.epochs}
    if scale.decay_epochs:
        epochs.add(scale.decay_epochs[0])
        epochs.update(d + few for d in scale.decay_epochs[1:])
    available = set(checkpoint_epochs(scale)) | {scale.epochs}
    return sorted(e for e in epochs if 1 <= e <= scale.epochs and e in available)


def interpolation_points(grid: int) -> int:
    """Points of an interpolation close to ``grid`` that put alpha = 0 and 1 on the grid
    (LandscapeJob spans alpha in [-0.25, 1.25]: 6k + 1 points, steps of 0.25 / k)."""
    return 6 * max(1, round((grid - 1) / 6)) + 1


def defaults(scale: Scale) -> dict[str, Any]:
    """The scale's design (its ``hessian`` and ``landscape`` sections, its l-SAM rho)."""
    early = default_early_epoch(scale)
    grid = scale.landscape.grid
    return {
        # chapter 4's SGD runs: their attacks and Hessians are the same jobs
        "seeds": default_seeds(scale),
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
        # sharpness over training (with chapter 4's Hessian settings)
        "sharpness_every": scale.hessian.every,
        **hessian_defaults(scale),
        # landscapes (the shared SAM runs of chapters 4 and 5: same seed, same rhos)
        "early_epoch": early,
        "landscape_epochs": default_landscape_epochs(scale, early),
        "lsam_rho": scale.lsam_rho,
        "rhos": sorted({SAM_RHO, scale.lsam_rho}),
        "landscape_grid": grid,
        "landscape_grid_2d": scale.landscape.grid_2d,
        "landscape_span": 1.0,
        "interpolation_points": interpolation_points(grid),
        "landscape_images": scale.landscape.images,
        "landscape_directions": scale.landscape.directions,
    }


def _positive_int(params: dict[str, Any], name: str, minimum: int = 1) -> int:
    value = params[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FlatnessError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float:
    """``value`` as a float, or a FlatnessError naming ``name`` (NaN and negatives refused)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise FlatnessError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def validate(params: dict[str, Any]) -> None:
    check_seeds(params)
    _positive_int(params, "attack_steps")
    if _non_negative("eps", params["eps"]) == 0:
        raise FlatnessError(f"eps must be a number > 0, got {params['eps']!r} (e.g. 8/255)")
    for name in ("sharpness_every", "sharpness_images", "sharpness_batch", "early_epoch"):
        _positive_int(params, name)
    for name in ("landscape_grid", "landscape_grid_2d"):
        _positive_int(params, name, minimum=3)
    if _positive_int(params, "interpolation_points", minimum=7) % 6 != 1:
        raise FlatnessError("interpolation_points must be 6k + 1 (7, 13, 19, 25, ...) so that "
                            "alpha = 0 and 1 lie on the grid, got "
                            f"{params['interpolation_points']!r}")
    _positive_int(params, "landscape_images")
    _positive_int(params, "landscape_directions")
    for name in ("trace_samples", "max_iter"):
        if params[name] is not None:
            _positive_int(params, name, minimum=2 if name == "trace_samples" else 1)
    epochs = params["landscape_epochs"]
    if (not isinstance(epochs, list) or not epochs
            or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1
                       for e in epochs)):
        raise FlatnessError(f"landscape_epochs must be a non-empty list of epochs >= 1, "
                            f"got {epochs!r}")
    _non_negative("lsam_rho", params["lsam_rho"])
    rhos = params["rhos"]
    if not isinstance(rhos, list) or not rhos:
        raise FlatnessError(f"rhos must be a non-empty list of numbers >= 0, got {rhos!r}")
    for rho in rhos:
        _non_negative("rhos[]", rho)
    span = _non_negative("landscape_span", params["landscape_span"])
    if span == 0:
        raise FlatnessError("landscape_span must be > 0 (half-width of the landscape grid)")


def _check_epochs(scale: Scale, params: dict[str, Any]) -> None:
    """Epochs must be checkpoints of the scale's surrogate (known only once the scale is)."""
    available = set(checkpoint_epochs(scale)) | {scale.epochs}
    wanted = {"early_epoch": [params["early_epoch"]],
              "landscape_epochs": params["landscape_epochs"]}
    for name, epochs in wanted.items():
        missing = [e for e in epochs if e not in available]
        if missing:
            raise FlatnessError(f"{name}: no surrogate checkpoint at epochs {missing} at scale "
                                f"{scale.name!r}; choose among 1..{scale.epochs} (checkpoints "
                                f"every {max(1, scale.checkpoint_every)} epochs)")


# -- jobs -----------------------------------------------------------------------------------
def transfer_job(scale: Scale, params: dict[str, Any], seed: int) -> TransferJob:
    """Chapter 2's standard-schedule job (the same key, so its output is reused)."""
    return TransferJob(standard_sgd(scale, seed), scale_attack(scale, params),
                       epochs=checkpoint_epochs(scale))


def sharpness_job(scale: Scale, params: dict[str, Any], seed: int) -> SharpnessJob:
    """Hessian metrics of one seed's SGD checkpoints (:func:`sharpness_epochs`)."""
    return sgd_sharpness_job(scale, params, seed, params["sharpness_every"])


def _landscape(params: dict[str, Any], model: TrainConfig, epoch: int, shape: str,
               other: TrainConfig | None = None, other_epoch: int | None = None,
               direction_seed: int = 0) -> LandscapeJob:
    points = params[{"2d": "landscape_grid_2d", "interpolation": "interpolation_points"}.get(
        shape, "landscape_grid")]
    return LandscapeJob(model, epoch=epoch, shape=shape, other=other, other_epoch=other_epoch,
                        points=points, span=float(params["landscape_span"]),
                        n_images=params["landscape_images"], direction_seed=direction_seed)


def sam_rhos(params: dict[str, Any]) -> list[float]:
    """The SAM radii to draw: ``rhos`` and l-SAM's, sorted, without duplicates."""
    return sorted({float(r) for r in params["rhos"]} | {float(params["lsam_rho"])})


def landscape_jobs(scale: Scale, params: dict[str, Any]) -> dict[str, LandscapeJob]:
    """Named landscape jobs of the first seed (names are the keys of the summary)."""
    seed, final = params["seeds"][0], scale.epochs
    sgd = standard_sgd(scale, seed)
    named: dict[str, LandscapeJob] = {}
    for epoch in sorted(set(params["landscape_epochs"]) | {params["early_epoch"], final}):
        for shape in ("1d", "2d"):
            named[f"sgd@{epoch}/{shape}"] = _landscape(params, sgd, epoch, shape)
    for rho in sam_rhos(params):
        for shape in ("1d", "2d"):
            named[f"sam{rho:g}/{shape}"] = _landscape(params, sam(scale, seed, rho), final, shape)
    named["interp/early->final"] = _landscape(params, sgd, params["early_epoch"],
                                              "interpolation", sgd, final)
    named["interp/sgd->lsam"] = _landscape(params, sgd, final, "interpolation",
                                           lsam(scale, seed, params["lsam_rho"]), final)
    return named


#: The models whose basins the flatness claim compares, on every seed.
COMPARED_MODELS = ("early", "final", "lsam")


def compared_landscape_jobs(scale: Scale, params: dict[str, Any], seed: int
                            ) -> dict[str, LandscapeJob]:
    """1-D and 2-D slices of early-stopped SGD, fully trained SGD and l-SAM of one seed: the
    flatness claim's comparison, drawn on every seed so that it has a seed-paired spread.
    Names ``early/2d``, ``early/1d`` (direction 0: the slider's), ``early/1d/1`` ... (the other
    ``landscape_directions``, the same for every model). The first seed's ``*/1d`` and
    ``*/2d`` are the slider's jobs (the same keys)."""
    sgd = standard_sgd(scale, seed)
    models = {"early": (sgd, params["early_epoch"]), "final": (sgd, scale.epochs),
              "lsam": (lsam(scale, seed, params["lsam_rho"]), scale.epochs)}
    named: dict[str, LandscapeJob] = {}
    for name, (model, epoch) in models.items():
        named[f"{name}/2d"] = _landscape(params, model, epoch, "2d")
        for direction in range(params["landscape_directions"]):
            suffix = f"/{direction}" if direction else ""
            named[f"{name}/1d{suffix}"] = _landscape(params, model, epoch, "1d",
                                                     direction_seed=direction)
    return named


def compared_direction_jobs(named: dict[str, LandscapeJob], model: str) -> list[LandscapeJob]:
    """``model``'s 1-D slices among :func:`compared_landscape_jobs`, in direction order."""
    return [job for name, job in named.items() if name.split("/")[:2] == [model, "1d"]]


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    scale = spec.scale
    _check_epochs(scale, params)
    planned: list[Job] = []
    for seed in params["seeds"]:
        planned += [transfer_job(scale, params, seed), sharpness_job(scale, params, seed)]
        planned += list(compared_landscape_jobs(scale, params, seed).values())
    planned += list(landscape_jobs(scale, params).values())
    # once each: the first seed's compared slices along direction 0 are the slider's
    return list({job.key(): job for job in planned}.values())


CHAPTER = Chapter(
    name="sharpness",
    title="Sharpness",
    notebook="03_sharpness",
    defaults=defaults,
    jobs=jobs,
    summarize=AnalysisSummary("sharpness"),
    validate=validate,
    # 2: declines of transferability carry their seed-paired spread; 3: the flatness claim's
    # models on every seed; 4: their 1-D curvature averaged over landscape_directions; 5: the
    # trace estimator's relative standard error
    summary_version=5,
)
