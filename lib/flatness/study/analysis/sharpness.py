"""Chapter 3's claims: sharpness drops when the learning rate decays; then SGD moves to
sharper regions as transferability declines; l-SAM and early stopping sit in flatter regions."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.study.claims import MIN_POINTS, Claim, Comparison

CHAPTER = "sharpness"
#: Smallest relative change of sharpness that counts: a 10-probe Hutchinson trace has an rms
#: error of about 8 % on the cpu surrogates (4.8 % with 30 probes,
#: ``benchmarks/trace_estimators.py``), so a few percent is estimator noise.
MIN_RELATIVE = 0.1
METRICS = {"top_eigenvalue": "top eigenvalue", "trace": "trace"}


def claims(data: dict[str, Any], scale: str) -> list[Claim]:
    return [drops_at_decays(data, scale), sharper_as_transfer_declines(data, scale),
            flatter_landscapes(data, scale)]


def drops_at_decays(data: dict[str, Any], scale: str) -> Claim:
    """Per seed: the metric over the window after each decay relative to its value at it."""
    f = data["findings"]
    comparisons = tuple(
        Comparison.paired(f"{label} after the decay at {drop['decay']} (relative)",
                          [row[k] for row in f["drops_per_seed"][m]], -1, unit="%",
                          floor=MIN_RELATIVE)
        for m, label in METRICS.items() for k, drop in enumerate(f["drops"][m]))
    return Claim(CHAPTER, "sharpness-drops-at-decay",
                 "The Hessian's largest eigenvalue and trace drop when the learning rate "
                 "decays (Fig. 5).", comparisons, scale)


def _per_seed(data: dict[str, Any], key: str) -> list[np.ndarray]:
    return [np.asarray(row[key], dtype=float) for row in data["per_seed"].values()]


def _at(epochs: list[int], epoch: int | None) -> int | None:
    return epochs.index(epoch) if epoch is not None and epoch in epochs else None


def sharper_as_transfer_declines(data: dict[str, Any], scale: str) -> Claim:
    """Per seed, between a decay and the next (or the end): sharpness from the mean curve's
    lowest epoch to the segment's last (a rise), success from the mean curve's peak to the
    segment's last (a fall), and the Spearman correlation of sharpness with success."""
    from flatness.study.chapters.sharpness import spearman

    f = data["findings"]
    s_epochs, t_epochs = data["sharpness_epochs"], data["transfer_epochs"]
    success = _per_seed(data, "success")
    comparisons = []
    for m, label in METRICS.items():
        values = _per_seed(data, m)
        for seg in f["rebounds"][m]:
            low, end = _at(s_epochs, seg.get("extreme_epoch")), _at(s_epochs, seg.get("end"))
            if low is None or end is None or low == end:
                continue
            comparisons.append(Comparison.paired(
                f"{label} from epoch {seg['extreme_epoch']} to {seg['end']} (relative rise)",
                [(v[end] - v[low]) / abs(v[low]) for v in values], +1, unit="%",
                floor=MIN_RELATIVE))
    for seg in f["success_declines"]:
        peak, end = _at(t_epochs, seg.get("extreme_epoch")), _at(t_epochs, seg.get("end"))
        if peak is None or end is None or peak == end:
            continue
        comparisons.append(Comparison.paired(
            f"success from its peak at epoch {seg['extreme_epoch']} to epoch {seg['end']}",
            [s[end] - s[peak] for s in success], -1, floor=MIN_POINTS))
    decays = data["decay_epochs"]
    after = [i for i, e in enumerate(s_epochs) if not decays or e > decays[0]]
    at_sharpness = [_at(t_epochs, e) for e in s_epochs]
    if all(i is not None for i in at_sharpness):
        for m, label in METRICS.items():
            rhos = [spearman(v[after], s[[at_sharpness[i] for i in after]])
                    for v, s in zip(_per_seed(data, m), success)]
            comparisons.append(Comparison.paired(
                f"Spearman({label}, success) after the first decay", rhos, -1, unit="",
                scale=1.0))
    return Claim(CHAPTER, "sharper-as-transfer-declines",
                 "After the decay SGD moves to sharper regions while transferability declines: "
                 "sharpness and success are anti-correlated (Fig. 5).",
                 tuple(comparisons), scale)


def flatter_landscapes(data: dict[str, Any], scale: str) -> Claim:
    """Loss-landscape curvature of fully trained SGD against early-stopped SGD and l-SAM: one
    seed (the landscape's), so these numbers describe and cannot decide."""
    f = data["findings"]
    curvature, rise = f["curvature"], f["mean_rise_2d"]
    comparisons = []
    for other, name in (("early", "early-stopped SGD"), ("lsam", "l-SAM")):
        for values, what in ((curvature, "1-D curvature"), (rise, "mean 2-D loss rise")):
            if values.get("final") is None or values.get(other) is None:
                continue
            comparisons.append(Comparison.paired(
                f"{what}: fully trained SGD − {name}", [values["final"] - values[other]], +1,
                unit="", scale=1.0))
    return Claim(CHAPTER, "flatter-landscapes",
                 "Fully trained SGD sits in a sharper region of the loss than early-stopped "
                 "SGD and than l-SAM (Figs. 6-7).", tuple(comparisons), scale,
                 note=f"One seed ({data.get('landscape_seed', '?')}): no seed-to-seed "
                      "uncertainty, so these comparisons cannot decide.")
