"""Chapter 2, learning-rate decay: transferability peaks a few epochs after the learning rate
decays, whenever that happens; with a constant learning rate there is no peak (Fig. 4).

Surrogates are trained with the scale's recipe under several schedules: one decay (/10) at
different epochs, the standard two decays, and a constant learning rate. Every checkpoint is
attacked (BIM L-inf) and scored on the target zoo.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import Chapter
from flatness.study.common import (
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    paired,
    scale_attack,
    seed_stats,
    surrogate,
)
from flatness.study.context import StudyContext, StudySpec
from flatness.study.jobs import Job, TransferJob


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


def _seeds_for(name: str, params: dict[str, Any]) -> list[int]:
    return params["single_decay_seeds"] if name.startswith("single") else params["seeds"]


def _job(scale: Scale, params: dict[str, Any], decays: list[int], seed: int) -> TransferJob:
    return TransferJob(surrogate(scale, seed, decay_epochs=tuple(decays)),
                       scale_attack(scale, params), epochs=checkpoint_epochs(scale))


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    return [_job(spec.scale, params, decays, seed)
            for name, decays in params["schedules"].items() for seed in _seeds_for(name, params)]


def peak_after_decay(epochs: list[int], per_seed: list[list[float]], decay: int, window: int
                     ) -> dict[str, Any]:
    """Best mean success in the ``window`` epochs after ``decay`` against the mean of the
    ``window`` before; ``spread``: that gain's, paired by seed (:func:`common.paired`)."""
    e = np.asarray(epochs)
    values = np.asarray(per_seed, dtype=float)  # seeds x epochs
    s = values.mean(axis=0)
    after = (e > decay) & (e <= decay + window)
    before = (e <= decay) & (e > decay - window)
    if not after.any() or not before.any():
        return {"decay": decay, "peak_epoch": None, "gain": None}
    best = int(np.argmax(np.where(after, s, -np.inf)))
    differences = values[:, best] - values[:, before].mean(axis=1)
    gain = paired(differences)
    return {"decay": decay, "peak_epoch": int(e[best]), "peak_success": float(s[best]),
            "before_mean": float(s[before].mean()), "gain": gain["mean"],
            "spread": gain["spread"], "differences": differences.tolist()}


def _in_order(schedules: dict[str, list[int]]) -> list[tuple[str, list[int]]]:
    """Schedules most decays first, then by first decay: the summary is the same whichever
    order the parameters list them in (a committed file's JSON sorts them by name)."""
    return sorted(schedules.items(), key=lambda item: (-len(item[1]), item[1], item[0]))


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    window = max(2, scale.epochs // 10)
    schedules: dict[str, Any] = {}
    targets: list[str] = []
    for name, decays in _in_order(params["schedules"]):
        runs = [outputs[_job(scale, params, decays, seed).key()]
                for seed in _seeds_for(name, params)]
        targets = runs[0]["targets"]
        epochs = runs[0]["epochs"]
        success = seed_stats([r["mean"] for r in runs])
        per_target = seed_stats([r["success"] for r in runs])  # epochs x targets
        accuracy = seed_stats([r["test_acc"] for r in runs])
        best = int(np.argmax(success["mean"]))
        schedules[name] = {
            "decay_epochs": decays,
            "seeds": _seeds_for(name, params),
            "epochs": epochs,
            "success_mean": success["mean"],
            "success_std": success["std"],
            "per_target_mean": per_target["mean"],
            "test_acc_mean": accuracy["mean"],
            "best_epoch": epochs[best],
            "best_success": success["mean"][best],
            "final_success": success["mean"][-1],
            "best_minus_final": [r["mean"][best] - r["mean"][-1] for r in runs],
            "best_minus_final_spread": paired([r["mean"][best] - r["mean"][-1]
                                               for r in runs])["spread"],
            "peaks": [peak_after_decay(epochs, [r["mean"] for r in runs], d, window)
                      for d in decays],
        }
    constant = schedules.get("constant")
    findings = {
        "window": window,
        "decays_followed_by_gain": [
            {"schedule": name, **peak} for name, s in schedules.items() for peak in s["peaks"]
            if peak.get("gain") is not None
        ],
        "constant_best_epoch": constant["best_epoch"] if constant else None,
        "constant_best_minus_final": (constant["best_success"] - constant["final_success"])
        if constant else None,
    }
    return {"targets": targets, "schedules": schedules, "findings": findings,
            "epochs": scale.epochs}


CHAPTER = Chapter(
    name="lr_decay",
    title="Learning-rate decay",
    notebook="02_lr_decay",
    defaults=defaults,
    jobs=jobs,
    summarize=summarize,
    validate=validate,
    summary_version=2,  # 2: peaks carry their seed-paired spread
)
