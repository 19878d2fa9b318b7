"""Chapter 2's analysis: the summary of its job outputs (each schedule's transfer curve over
seeds, its peak after each decay) and the paper's claims from it: transferability peaks a few
epochs after a learning-rate decay, whenever it happens, and has no early peak with a constant
learning rate."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.study.analysis.paired import from_entry
from flatness.study.chapters import lr_decay as design
from flatness.study.claims import MIN_POINTS, Claim
from flatness.study.common import paired, seed_stats
from flatness.study.context import StudyContext

CHAPTER = "lr_decay"
#: A constant schedule "has no early peak" when its best-minus-final gain is surely within
#: this many success points (the equivalence margin of a predicted absence).
NO_PEAK_MARGIN = 0.02


# -- the summary ------------------------------------------------------------------------------
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
        runs = [outputs[design.transfer_job(scale, params, decays, seed).key()]
                for seed in design.seeds_for(name, params)]
        targets = runs[0]["targets"]
        epochs = runs[0]["epochs"]
        success = seed_stats([r["mean"] for r in runs])
        per_target = seed_stats([r["success"] for r in runs])  # epochs x targets
        accuracy = seed_stats([r["test_acc"] for r in runs])
        best = int(np.argmax(success["mean"]))
        schedules[name] = {
            "decay_epochs": decays,
            "seeds": design.seeds_for(name, params),
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


# -- the claims -------------------------------------------------------------------------------
def claims(data: dict[str, Any], scale: str) -> list[Claim]:
    return [peaks_after_decays(data, scale), no_peak_when_constant(data, scale)]


def peaks_after_decays(data: dict[str, Any], scale: str) -> Claim:
    """Peak in the window after each decay minus the mean of the window before, per seed."""
    window = data["findings"]["window"]
    comparisons = tuple(
        from_entry(f"`{p['schedule']}` decay at {p['decay']}: peak (epoch {p['peak_epoch']}) "
                   f"− {window} epochs before", p,
                   len(data["schedules"][p["schedule"]]["seeds"]), +1, floor=MIN_POINTS)
        for p in data["findings"]["decays_followed_by_gain"])
    return Claim(CHAPTER, "peak-after-decay",
                 "Transferability peaks a few epochs after the learning rate decays, whatever "
                 "the decay epoch (Fig. 4).", comparisons, scale)


def no_peak_when_constant(data: dict[str, Any], scale: str) -> Claim:
    """The constant schedule's best epoch minus its final epoch, predicted absent."""
    constant = data["schedules"].get("constant")
    comparisons = ()
    if constant:
        entry = {"gain": constant["best_success"] - constant["final_success"],
                 "spread": constant["best_minus_final_spread"],
                 "differences": constant.get("best_minus_final")}
        comparisons = (from_entry(f"constant lr: best epoch {constant['best_epoch']} − final",
                                  entry, len(constant["seeds"]), 0, floor=NO_PEAK_MARGIN),)
    return Claim(CHAPTER, "no-peak-constant-lr",
                 "With a constant learning rate there is no early peak to catch (Fig. 4).",
                 comparisons, scale,
                 note=f"An absence counts for the paper only when the 95 % interval of best − "
                      f"final lies within ±{100 * NO_PEAK_MARGIN:.0f} points.")
