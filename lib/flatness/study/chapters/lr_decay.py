"""Chapter 2, learning-rate decay: transferability peaks a few epochs after the learning rate
decays, whenever that happens; with a constant learning rate there is no peak (Fig. 4).

Surrogates are trained with the scale's recipe under several schedules: one decay (/10) at
different epochs, the standard two decays, and a constant learning rate. A single decay at e
resumes the constant-rate run's training state at e (:func:`run_config`), the same run until
then. Every checkpoint is attacked (BIM L-inf) and scored on the target zoo.

This module is the chapter's design: its parameters and the jobs they imply. The summary and
the claims are :mod:`flatness.study.analysis.lr_decay`'s, the figures
:mod:`flatness.plots.lr_decay`'s.
"""

from __future__ import annotations

from typing import Any

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import AnalysisSummary, Chapter
from flatness.study.common import (
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    scale_attack,
    surrogate,
)
from flatness.study.context import StudySpec
from flatness.study.jobs import Job, TransferJob
from flatness.training import TrainConfig


def defaults(scale: Scale) -> dict[str, Any]:
    epochs = scale.epochs
    singles = sorted({max(1, round(epochs * f)) for f in (0.2, 0.4, 0.6, 0.8)} - {epochs})
    schedules = {"standard": list(scale.decay_epochs), "constant": []}
    schedules.update({f"single@{e}": [e] for e in singles})
    seeds = default_seeds(scale)  # the standard schedule's runs are chapter 4's SGD runs
    return {
        "seeds": seeds,
        # every seed: a peak after a single decay is judged against its seed-paired spread
        # (two seeds left the peak after a decay at 18 within it); users may pass fewer
        "single_decay_seeds": seeds,
        "schedules": schedules,
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
    }


def validate(params: dict[str, Any]) -> None:
    check_seeds(params)
    schedules = params["schedules"]
    if not isinstance(schedules, dict) or not schedules:
        raise FlatnessError("schedules must map a name to a list of decay epochs")
    for name, decays in schedules.items():
        if not isinstance(decays, list) or not all(isinstance(e, int) and e >= 1 for e in decays):
            raise FlatnessError(f"schedule {name!r}: decay epochs must be positive integers")


def seeds_for(name: str, params: dict[str, Any]) -> list[int]:
    """The seeds of schedule ``name`` (``single_decay_seeds`` for a single decay)."""
    return params["single_decay_seeds"] if name.startswith("single") else params["seeds"]


def branches(scale: Scale, params: dict[str, Any], decays: list[int], seed: int) -> bool:
    """Whether schedule ``decays`` continues the constant-rate run of ``seed`` from its first
    decay (a resumed branch: until then the two are the same run) instead of training from
    scratch: every schedule but the constant and the standard one (chapter 4's SGD, trained
    from scratch and shared), when the constant schedule trains that seed."""
    return (bool(decays) and tuple(decays) != tuple(scale.decay_epochs)
            and [] in params["schedules"].values() and seed in params["seeds"]
            and min(decays) < scale.epochs)


def run_config(scale: Scale, params: dict[str, Any], decays: list[int], seed: int
               ) -> TrainConfig:
    """The recipe decayed at ``decays``. The constant-rate run keeps its training state at
    the other schedules' first decays, and those schedules resume it there: at cpu, 30 of
    the 60 epochs of a seed's four single decays are the constant run's."""
    if not decays:
        state = sorted({min(d) for d in params["schedules"].values()
                        if branches(scale, params, d, seed)})
        return surrogate(scale, seed, decay_epochs=(), state_epochs=tuple(state))
    if branches(scale, params, decays, seed):
        return run_config(scale, params, [], seed).branch(min(decays), resume=True,
                                                           decay_epochs=tuple(decays))
    return surrogate(scale, seed, decay_epochs=tuple(decays))


def transfer_job(scale: Scale, params: dict[str, Any], decays: list[int], seed: int
                 ) -> TransferJob:
    """The recipe decayed at ``decays``, every checkpoint attacked (the standard schedule's is
    the SGD curve of chapters 3, 4 and 5)."""
    return TransferJob(run_config(scale, params, decays, seed), scale_attack(scale, params),
                       epochs=checkpoint_epochs(scale))


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    return [transfer_job(spec.scale, params, decays, seed)
            for name, decays in params["schedules"].items() for seed in seeds_for(name, params)]


CHAPTER = Chapter(
    name="lr_decay",
    title="Learning-rate decay",
    notebook="02_lr_decay",
    defaults=defaults,
    jobs=jobs,
    summarize=AnalysisSummary("lr_decay"),
    validate=validate,
    summary_version=2,  # 2: peaks carry their seed-paired spread
)
