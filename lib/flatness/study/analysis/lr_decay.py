"""Chapter 2's claims: transferability peaks a few epochs after a learning-rate decay,
whenever it happens, and has no early peak with a constant learning rate."""

from __future__ import annotations

from typing import Any

from flatness.study.analysis.paired import from_entry
from flatness.study.claims import MIN_POINTS, Claim

CHAPTER = "lr_decay"
#: A constant schedule "has no early peak" when its best-minus-final gain is surely within
#: this many success points (the equivalence margin of a predicted absence).
NO_PEAK_MARGIN = 0.02


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
