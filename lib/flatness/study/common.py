"""Helpers shared by the chapters: surrogate recipes, the scale's attack, seed statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.minimizers import parse_hyperparameters
from flatness.scales import Scale
from flatness.study.jobs import AttackSpec, SharpnessJob
from flatness.training import TrainConfig

#: SAM's standard neighbourhood radius (Foret et al. 2021). l-SAM's large one is the scale's
#: ``lsam_rho``: 0.3 is "large" for a ResNet after a long training, but cripples the small,
#: shorter-trained surrogates of the cpu scale (PAPER.md probe), which use a smaller one.
SAM_RHO = 0.05


# -- the surrogate recipes, named once: every chapter that trains one trains the same run ------
def surrogate(scale: Scale, seed: int, **overrides: Any) -> TrainConfig:
    """The scale's surrogate recipe (checkpoints every ``checkpoint_every`` epochs)."""
    return TrainConfig.from_scale(scale, seed=seed, **overrides)


def standard_sgd(scale: Scale, seed: int) -> TrainConfig:
    """Standard SGD with the scale's two decays: chapter 2's standard schedule, chapter 3's
    subject, chapter 4's and 5's baseline (fully trained or early stopped)."""
    return surrogate(scale, seed)


def minimizer_surrogate(scale: Scale, seed: int, name: str, rho: float | None = None
                        ) -> TrainConfig:
    """The recipe trained with minimizer ``name`` (at its default rho when ``rho`` is None).
    Only SGD's checkpoints are read (early stopping, sharpness over training): the others keep
    their final weights alone, the runs the regime map trains at the same cell."""
    if name == "sgd":
        return standard_sgd(scale, seed)
    return surrogate(scale, seed, minimizer=name, checkpoint_epochs=(),
                     minimizer_params=minimizer_params(scale, name, rho))


def minimizer_params(scale: Scale, name: str, rho: float | None = None) -> dict[str, Any]:
    """The hyper-parameters a run of minimizer ``name`` trains with at ``scale``: those other
    than rho the scale sets (``minimizers.hyperparameters``, read as the minimizer's types;
    clear errors for an unknown name or a rho set there), and ``rho`` when given. Every
    chapter builds its runs' ``minimizer_params`` here, so that runs shared across chapters
    (the regime map's SAM cells, chapter 4's SAM) keep one key."""
    values = scale.minimizers.hyperparameters.get(name, {})
    if "rho" in values:
        raise FlatnessError(f"minimizers.hyperparameters.{name} sets rho: rho belongs in "
                            f"minimizers.rhos.{name}")
    params = parse_hyperparameters(name, {key: _text(value) for key, value in values.items()})
    if rho is not None:
        params["rho"] = float(rho)
    return params


def _text(value: float) -> str:
    """A design value as :func:`parse_hyperparameters` reads it (``5.0`` as ``5``: an int)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def sam(scale: Scale, seed: int, rho: float = SAM_RHO) -> TrainConfig:
    """SAM at radius ``rho`` (default: the standard one)."""
    return minimizer_surrogate(scale, seed, "sam", rho)


def lsam(scale: Scale, seed: int, rho: float | None = None) -> TrainConfig:
    """l-SAM: SAM at a large radius, the scale's ``lsam_rho`` unless ``rho`` is given."""
    return sam(scale, seed, scale.lsam_rho if rho is None else rho)


def scale_attack(scale: Scale, params: dict[str, Any], techniques: tuple[str, ...] = ()
                 ) -> AttackSpec:
    """BIM L-inf with the chapter's eps and steps (defaults: the scale's)."""
    return AttackSpec(eps=float(params.get("eps", scale.eps)),
                      steps=int(params.get("attack_steps", scale.attack_steps)),
                      techniques=tuple(techniques))


def checkpoint_epochs(scale: Scale) -> tuple[int, ...]:
    every = max(1, scale.checkpoint_every)
    return tuple(range(every, scale.epochs + 1, every))


def epochs_after_decay(scale: Scale) -> int:
    """How many epochs after a decay count as "a few" (at least one)."""
    return max(1, scale.epochs // 15)


def sharpness_epochs(scale: Scale, every: int) -> list[int]:
    """Every ``every``-th checkpoint, plus each decay epoch and the few epochs after it (the
    drop must be visible whatever ``every`` is) and the final epoch."""
    available = set(checkpoint_epochs(scale)) | {scale.epochs}
    wanted = {e for e in available if e % every == 0} | {scale.epochs}
    for d in scale.decay_epochs:
        wanted.update(range(d, d + epochs_after_decay(scale) + 1))
    return sorted(wanted & available)


#: Chapter parameters of the Hessian estimates, read from the scale's ``hessian`` section.
HESSIAN_PARAMS = {"sharpness_images": "images", "sharpness_batch": "batch",
                  "trace_samples": "trace_samples", "max_iter": "max_iter",
                  "trace_method": "trace_method"}
#: The trace estimator of results whose parameters predate ``trace_method``.
EARLIER_TRACE_METHOD = "hutchinson"


def hessian_defaults(scale: Scale) -> dict[str, Any]:
    """The chapter parameters of the scale's Hessian settings (chapters 3 and 4 share them)."""
    return {param: getattr(scale.hessian, name) for param, name in HESSIAN_PARAMS.items()}


def hessian_job(config: TrainConfig, params: dict[str, Any], epochs: tuple[int, ...] = ()
                  ) -> SharpnessJob:
    """Top Hessian eigenvalue and trace of ``config``'s run at ``epochs`` (default: its final
    epoch) with the Hessian settings in ``params`` (:func:`hessian_defaults`)."""
    return SharpnessJob(config, epochs=epochs, engine="fast", n_images=params["sharpness_images"],
                        batch_size=params["sharpness_batch"],
                        trace_samples=params["trace_samples"], max_iter=params["max_iter"],
                        trace_method=params.get("trace_method", EARLIER_TRACE_METHOD))


def sgd_sharpness_job(scale: Scale, params: dict[str, Any], seed: int, every: int
                      ) -> SharpnessJob:
    """Sharpness of standard SGD over training (:func:`sharpness_epochs`): chapter 3's job,
    and chapter 4's sharpness of fully trained SGD at the scale's ``hessian.every``."""
    return hessian_job(standard_sgd(scale, seed), params, tuple(sharpness_epochs(scale, every)))


def seed_stats(values: Any) -> dict[str, list[float]]:
    """Mean and standard deviation over the first axis (seeds); std 0 with one seed."""
    arr = np.asarray(values, dtype=float)
    std = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else np.zeros(arr.shape[1:])
    return {"mean": arr.mean(axis=0).tolist(), "std": std.tolist()}


#: Smallest spread (success-rate fraction) a difference must exceed: one seed has no spread.
MIN_SPREAD = 0.01


def paired(differences: Any) -> dict[str, float]:
    """Per-seed differences (a within-run gain, or two surrogates sharing a seed's
    initialisation and batch order): their mean, std and the spread a claimed gain must
    exceed, 2 std and at least :data:`MIN_SPREAD`. An offset that a seed has at every epoch
    cancels out in such a difference, as it does not in the spread of the levels."""
    d = np.asarray(differences, dtype=float)
    std = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return {"mean": float(d.mean()), "std": std, "spread": max(2 * std, MIN_SPREAD)}


def check_seeds(params: dict[str, Any]) -> None:
    seeds = params.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise FlatnessError(f"seeds must be a non-empty list of integers, got {seeds!r}")


def check_names(params: dict[str, Any], key: str, known: tuple[str, ...], *, what: str,
                non_empty: bool = False) -> None:
    """``params[key]`` must list distinct names among ``known`` (and at least one if asked)."""
    values = params[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise FlatnessError(f"{key} must be a list of names among: {', '.join(known)}")
    unknown = [v for v in values if v not in known]
    if unknown:
        raise FlatnessError(f"unknown {what} {', '.join(map(repr, unknown))} in {key}; "
                            f"choose among: {', '.join(known)}")
    if len(set(values)) != len(values):
        raise FlatnessError(f"{key} lists a name twice: {values!r}")
    if non_empty and not values:
        raise FlatnessError(f"{key} must name at least one {what}")


def default_seeds(scale: Scale) -> list[int]:
    return list(scale.seeds)
