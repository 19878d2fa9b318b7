"""Chapter 3's analysis: the summary of its job outputs (sharpness and success over training,
their changes at and after each decay, their correlation, the flatness of every loss landscape)
and the paper's claims from it: sharpness drops when the learning rate decays; then SGD moves
to sharper regions as transferability declines; l-SAM and early stopping sit in flatter
regions."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapters import sharpness as design
from flatness.study.claims import MIN_POINTS, Claim, Comparison
from flatness.study.common import epochs_after_decay, paired, seed_stats
from flatness.study.context import StudyContext
from flatness.study.jobs import LandscapeJob

CHAPTER = "sharpness"
#: Smallest relative change of sharpness that counts: a 10-probe Hutchinson trace has an rms
#: error of about 8 % on the cpu surrogates (4.8 % with 30 probes,
#: ``benchmarks/trace_estimators.py``), so a few percent is estimator noise.
MIN_RELATIVE = 0.1
#: Sharpness metrics the chapter reports (keys of the SharpnessJob output), with their labels.
METRICS = {"top_eigenvalue": "top eigenvalue", "trace": "trace"}


# -- the summary ------------------------------------------------------------------------------
def spearman(a: Any, b: Any) -> float | None:
    """Spearman rank correlation (scipy), ``None`` when undefined (< 3 points or constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def decay_change(epochs: list[int], values: list[float], decay: int, window: int
                 ) -> dict[str, Any]:
    """A metric at the decay epoch (the last at the higher rate) against the mean of the
    ``window`` epochs after it; ``relative`` < 0 is a drop."""
    e, v = np.asarray(epochs), np.asarray(values, dtype=float)
    at = v[e == decay]
    after = v[(e > decay) & (e <= decay + window)]
    if not at.size or not after.size:
        return {"decay": decay, "before": None, "after": None, "relative": None}
    before, after_mean = float(at[0]), float(after.mean())
    return {"decay": decay, "before": before, "after": after_mean,
            "relative": (after_mean - before) / abs(before) if before else None}


def segment_change(epochs: list[int], values: list[float], start: int, end: int,
                   extreme: str = "min") -> dict[str, Any]:
    """From the lowest (``extreme="min"``) or highest (``"max"``) point of the epochs
    ``(start, end]`` to the last one: ``relative`` > 0 is a rise after the minimum (sharpness
    climbing again), < 0 a decline after the maximum (transferability fading)."""
    e, v = np.asarray(epochs), np.asarray(values, dtype=float)
    seg = (e > start) & (e <= end)
    if seg.sum() < 2:
        return {"start": start, "end": end, "extreme_epoch": None, "relative": None}
    fill = np.inf if extreme == "min" else -np.inf
    pick = np.argmin if extreme == "min" else np.argmax
    i_ext = int(pick(np.where(seg, v, fill)))
    last = int(np.flatnonzero(seg)[-1])
    ext, final = float(v[i_ext]), float(v[last])
    return {"start": start, "end": int(e[last]), "extreme_epoch": int(e[i_ext]),
            "extreme": ext, "end_value": final,
            "relative": (final - ext) / abs(ext) if ext else None}


def slice_metrics(alphas: list[float], loss: list[float]) -> dict[str, Any]:
    """Flatness of a 1-D loss slice: curvature at 0 (central second difference on the grid)
    and the loss increase at half and full span (mean of both sides)."""
    a, v = np.asarray(alphas, dtype=float), np.asarray(loss, dtype=float)
    i0 = int(np.argmin(np.abs(a)))
    if i0 == 0 or i0 == len(a) - 1:
        raise FlatnessError("a landscape slice needs grid points on both sides of 0")
    h = float(a[i0 + 1] - a[i0])
    curvature = float((v[i0 + 1] - 2 * v[i0] + v[i0 - 1]) / h ** 2)
    span = float(np.max(np.abs(a)))

    def rise(r: float) -> float:
        left, right = int(np.argmin(np.abs(a + r))), int(np.argmin(np.abs(a - r)))
        return float((v[left] + v[right]) / 2 - v[i0])

    return {"loss_at_0": float(v[i0]), "curvature": curvature, "step": h,
            "half_span": span / 2, "rise_half": rise(span / 2), "rise_full": rise(span)}


def surface_metrics(grid: list[list[float]]) -> dict[str, Any]:
    """Flatness of a 2-D loss grid: mean and max loss increase over the grid from its centre."""
    z = np.asarray(grid, dtype=float)
    centre = float(z[z.shape[0] // 2, z.shape[1] // 2])
    return {"loss_at_0": centre, "mean_rise": float(np.nanmean(z) - centre),
            "max_rise": float(np.nanmax(z) - centre)}


def interpolation_metrics(alphas: list[float], loss: list[float]) -> dict[str, Any]:
    """Endpoint losses and the barrier: the largest excess over the straight line between the
    endpoints for alpha in [0, 1] (0: the two models are linearly connected). Points outside
    [0, 1] are ignored (extrapolated BatchNorm variances can be negative there: NaN loss)."""
    a, v = np.asarray(alphas, dtype=float), np.asarray(loss, dtype=float)
    i0, i1 = int(np.argmin(np.abs(a))), int(np.argmin(np.abs(a - 1)))
    if abs(a[i0]) > 1e-9 or abs(a[i1] - 1) > 1e-9:
        raise FlatnessError("an interpolation needs alpha = 0 and alpha = 1 on its grid")
    l0, l1 = float(v[i0]), float(v[i1])
    inside = slice(i0, i1 + 1)
    excess = v[inside] - ((1 - a[inside]) * l0 + a[inside] * l1)
    barrier = float(np.nanmax(excess)) if np.isfinite(excess).any() else None
    return {"loss_start": l0, "loss_end": l1, "barrier": barrier}


def _align(runs: list[dict[str, Any]], key: str, epochs: list[int]) -> list[list[float]]:
    """Per-seed values of ``key`` at ``epochs`` (NaN where a seed lacks the epoch)."""
    out = []
    for run in runs:
        lookup = dict(zip(run["epochs"], run[key]))
        out.append([float(lookup[e]) if lookup.get(e) is not None else float("nan")
                    for e in epochs])
    return out


def _stats(values: list[list[float]]) -> dict[str, list[float]]:
    arr = np.asarray(values, dtype=float)
    mean = np.nanmean(arr, axis=0)
    std = np.nanstd(arr, axis=0, ddof=1) if arr.shape[0] > 1 else np.zeros(arr.shape[1])
    return {"mean": mean.tolist(), "std": np.nan_to_num(std).tolist()}


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    seeds = params["seeds"]
    decays = list(scale.decay_epochs)
    window = epochs_after_decay(scale)

    transfers = [outputs[design.transfer_job(scale, params, s).key()] for s in seeds]
    sharp = [outputs[design.sharpness_job(scale, params, s).key()] for s in seeds]
    t_epochs = transfers[0]["epochs"]
    s_epochs = sharp[0]["epochs"]
    success = seed_stats([t["mean"] for t in transfers])
    accuracy = _stats([[np.nan if a is None else a for a in t["test_acc"]] for t in transfers])
    per_seed = {
        str(s): {"success": t["mean"], **{m: h[m] for m in METRICS}}
        for s, t, h in zip(seeds, transfers, sharp)
    }
    metrics = {m: _stats([h[m] for h in sharp]) for m in METRICS}

    # success at the sharpness epochs, for correlations
    success_at = _stats(_align(transfers, "mean", s_epochs))["mean"]
    after_first = [e > decays[0] for e in s_epochs] if decays else [True] * len(s_epochs)
    correlations = {}
    for m in METRICS:
        x = np.asarray(metrics[m]["mean"])
        y = np.asarray(success_at)
        mask = np.asarray(after_first)
        correlations[m] = {
            "all_epochs": spearman(x, y),
            "after_first_decay": spearman(x[mask], y[mask]),
            "per_seed": [spearman(h[m], _align([t], "mean", h["epochs"])[0])
                         for h, t in zip(sharp, transfers)],
        }

    bounds = decays + [scale.epochs]
    drops = {m: [decay_change(s_epochs, metrics[m]["mean"], d, window) for d in decays]
             for m in METRICS}
    drops_per_seed = {m: [[decay_change(h["epochs"], h[m], d, window)["relative"]
                           for d in decays] for h in sharp] for m in METRICS}
    rebounds = {m: [segment_change(s_epochs, metrics[m]["mean"], d, end, "min")
                    for d, end in zip(decays, bounds[1:])] for m in METRICS}
    success_declines = [segment_change(t_epochs, success["mean"], d, end, "max")
                        for d, end in zip(decays, bounds[1:])]
    for seg in success_declines:  # the fall from the peak, paired by seed
        if seg["extreme_epoch"] is not None:
            peak, last = t_epochs.index(seg["extreme_epoch"]), t_epochs.index(seg["end"])
            seg["spread"] = paired([t["mean"][peak] - t["mean"][last]
                                    for t in transfers])["spread"]

    best = int(np.argmax(success["mean"]))
    seed0_best = int(np.argmax(transfers[0]["mean"]))
    early = params["early_epoch"]
    early_success = dict(zip(t_epochs, success["mean"])).get(early)

    landscapes = {}
    for name, job in design.landscape_jobs(scale, params).items():
        out = outputs[job.key()]
        entry = {k: out[k] for k in ("type", "alphas", "betas", "train_loss", "train_acc",
                                     "test_loss", "test_acc") if k in out}
        if job.shape == "1d":
            entry["metrics"] = slice_metrics(out["alphas"], out["train_loss"])
            entry["test_metrics"] = slice_metrics(out["alphas"], out["test_loss"])
        elif job.shape == "2d":
            entry["metrics"] = surface_metrics(out["train_loss"])
        else:
            entry["metrics"] = interpolation_metrics(out["alphas"], out["train_loss"])
        landscapes[name] = entry

    final = scale.epochs
    lsam = f"sam{float(params['lsam_rho']):g}"

    def curvature(name: str) -> float | None:
        entry = landscapes.get(f"{name}/1d")
        return entry["metrics"]["curvature"] if entry else None

    def rise(name: str) -> float | None:
        entry = landscapes.get(f"{name}/2d")
        return entry["metrics"]["mean_rise"] if entry else None

    compared = compared_basins(scale, params, outputs)
    findings = {
        "window": window,
        "trace_relative_stderr": trace_relative_stderr(sharp),
        "decays": decays,
        "drops": drops,
        "drops_per_seed": drops_per_seed,
        "rebounds": rebounds,
        "success_declines": success_declines,
        "correlation": correlations,
        "early_epoch": early,
        "early_success": early_success,
        "best_epoch": t_epochs[best],
        "best_success": success["mean"][best],
        "best_epoch_seed0": t_epochs[seed0_best],
        "final_success": success["mean"][-1],
        "curvature": {"early": curvature(f"sgd@{early}"), "final": curvature(f"sgd@{final}"),
                      "lsam": curvature(lsam)},
        "mean_rise_2d": {"early": rise(f"sgd@{early}"), "final": rise(f"sgd@{final}"),
                         "lsam": rise(lsam)},
        "compared": compared,
        "sam_curvature_by_rho": {f"{r:g}": curvature(f"sam{r:g}") for r in design.sam_rhos(params)},
        "barriers": {k.split("/", 1)[1]: v["metrics"]["barrier"] for k, v in landscapes.items()
                     if k.startswith("interp/")},
    }
    return {
        "targets": transfers[0]["targets"],
        "seeds": seeds,
        "epochs": scale.epochs,
        "decay_epochs": decays,
        "transfer_epochs": t_epochs,
        "success_mean": success["mean"],
        "success_std": success["std"],
        "test_acc_mean": accuracy["mean"],
        "sharpness_epochs": s_epochs,
        "sharpness": metrics,
        "per_seed": per_seed,
        "landscape_seed": seeds[0],
        "landscape_epochs": sorted(set(params["landscape_epochs"]) | {early, final}),
        "sam_rhos": design.sam_rhos(params),
        "lsam_rho": float(params["lsam_rho"]),
        "landscapes": landscapes,
        "findings": findings,
    }


def compared_basins(scale: Scale, params: dict[str, Any], outputs: dict[str, Any]
                    ) -> dict[str, Any]:
    """Per seed, the 1-D curvature (mean over ``landscape_directions`` random directions, each
    direction's kept) and the mean 2-D loss rise of early-stopped SGD, fully trained SGD and
    l-SAM (:func:`design.compared_landscape_jobs`): lists in seed order."""
    per_seed = [design.compared_landscape_jobs(scale, params, seed) for seed in params["seeds"]]

    def slice_curvature(job: LandscapeJob) -> float:
        out = outputs[job.key()]
        return slice_metrics(out["alphas"], out["train_loss"])["curvature"]

    def curvatures(name: str) -> list[list[float]]:
        return [[slice_curvature(job) for job in design.compared_direction_jobs(named, name)]
                for named in per_seed]

    def mean_rise(name: str) -> list[float]:
        return [surface_metrics(outputs[named[f"{name}/2d"].key()]["train_loss"])["mean_rise"]
                for named in per_seed]

    by_direction = {name: curvatures(name) for name in design.COMPARED_MODELS}
    return {"seeds": list(params["seeds"]),
            "directions": int(params["landscape_directions"]),
            "curvature": {name: [float(np.mean(row)) for row in rows]
                          for name, rows in by_direction.items()},
            "curvature_by_direction": by_direction,
            "mean_rise_2d": {name: mean_rise(name) for name in design.COMPARED_MODELS}}


# -- the claims -------------------------------------------------------------------------------
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
    noise = f["trace_relative_stderr"]
    note = ("" if noise is None else
            f"Each trace is a Hutchinson estimate whose reported standard error is "
            f"{noise * 100:.0f} % of it on average, so a relative change between two "
            f"epochs carries about {noise * 2 ** 0.5 * 100:.0f} % of estimator noise on "
            f"every seed.")
    return Claim(CHAPTER, "sharpness-drops-at-decay",
                 "The Hessian's largest eigenvalue and trace drop when the learning rate "
                 "decays (Fig. 5).", comparisons, scale, note=note)


def trace_relative_stderr(sharp: list[dict[str, Any]]) -> float | None:
    """The mean, over seeds and epochs, of each trace estimate's reported standard error
    relative to it (the estimator's own noise, beside the seeds' spread); None without one."""
    ratios = [se / abs(tr) for h in sharp for se, tr in zip(h["trace_stderr"], h["trace"])
              if se is not None and tr]
    return float(np.mean(ratios)) if ratios else None


def _per_seed(data: dict[str, Any], key: str) -> list[np.ndarray]:
    return [np.asarray(row[key], dtype=float) for row in data["per_seed"].values()]


def _at(epochs: list[int], epoch: int | None) -> int | None:
    return epochs.index(epoch) if epoch is not None and epoch in epochs else None


def sharper_as_transfer_declines(data: dict[str, Any], scale: str) -> Claim:
    """Per seed, between a decay and the next (or the end): sharpness from the mean curve's
    lowest epoch to the segment's last (a rise), success from the mean curve's peak to the
    segment's last (a fall), and the Spearman correlation of sharpness with success."""
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


def directions(compared: dict[str, Any]) -> str:
    """How many random directions each compared 1-D curvature averages, in words."""
    n = compared["directions"]
    return "one direction" if n == 1 else f"mean of {n} directions"


def flatter_landscapes(data: dict[str, Any], scale: str) -> Claim:
    """Per seed, how much sharper fully trained SGD's basin is than early-stopped SGD's and
    l-SAM's (relative: 1-D curvature averaged over the same filter-normalised random
    directions, and mean 2-D loss rise over the same plane), with the sharpness claims'
    minimal effect."""
    compared = data["findings"]["compared"]
    comparisons = []
    for model, name in (("early", "early-stopped SGD"), ("lsam", "l-SAM")):
        for key, what in (("curvature", f"1-D curvature ({directions(compared)})"),
                          ("mean_rise_2d", "mean 2-D loss rise")):
            final, other = compared[key]["final"], compared[key][model]
            comparisons.append(Comparison.paired(
                f"{what}: fully trained SGD relative to {name}",
                [(f - o) / abs(o) if o else None for f, o in zip(final, other)], +1,
                unit="%", floor=MIN_RELATIVE))
    return Claim(CHAPTER, "flatter-landscapes",
                 "Fully trained SGD sits in a sharper region of the loss than early-stopped "
                 "SGD and than l-SAM (Figs. 6-7).", tuple(comparisons), scale)
