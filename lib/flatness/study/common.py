"""Helpers shared by the chapters: surrogate recipes, the scale's attack, seed statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.jobs import AttackSpec
from flatness.training import TrainConfig

#: SAM's standard neighbourhood radius (Foret et al. 2021).
SAM_RHO = 0.05
#: l-SAM's large radius per scale: 0.3 is "large" for a ResNet after a long training, but it
#: cripples the small, shorter-trained surrogates of the cpu scale (PAPER.md probe), where a
#: smaller large rho is used. Shared by chapters 3, 4 and 5 so that
#: their l-SAM surrogates are the same cached runs.
LSAM_RHO = {"smoke": 0.3, "cpu": 0.15, "gpu": 0.3, "paper": 0.3}


def surrogate(scale: Scale, seed: int, **overrides: Any) -> TrainConfig:
    """The scale's surrogate recipe (checkpoints every ``checkpoint_every`` epochs)."""
    return TrainConfig.from_scale(scale, seed=seed, **overrides)


def scale_attack(scale: Scale, params: dict[str, Any], techniques: tuple[str, ...] = ()
                 ) -> AttackSpec:
    """BIM L-inf with the chapter's eps and steps (defaults: the scale's)."""
    return AttackSpec(eps=float(params.get("eps", scale.eps)),
                      steps=int(params.get("attack_steps", scale.attack_steps)),
                      techniques=tuple(techniques))


def checkpoint_epochs(scale: Scale) -> tuple[int, ...]:
    every = max(1, scale.checkpoint_every)
    return tuple(range(every, scale.epochs + 1, every))


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
