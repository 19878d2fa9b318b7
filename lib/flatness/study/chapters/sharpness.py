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
  trained SGD -> l-SAM.

Jobs are planned before any output exists, so the early-stopped model is a *planned* epoch
(default: a few epochs after the first decay, where chapter 2 finds the peak); the summary
also reports the empirically best epoch of the transfer curve so the reader can check that
the two agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import Chapter
from flatness.study.common import (
    SAM_RHO,
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    epochs_after_decay,
    hessian_defaults,
    lsam,
    paired,
    sam,
    scale_attack,
    seed_stats,
    sgd_sharpness_job,
    standard_sgd,
)
from flatness.study.context import StudyContext, StudySpec
from flatness.study.jobs import Job, LandscapeJob, SharpnessJob, TransferJob
from flatness.study.report import fmt
from flatness.training import TrainConfig

#: Sharpness metrics reported by the chapter (keys of the SharpnessJob output).
METRICS = ("top_eigenvalue", "trace")


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
               other: TrainConfig | None = None, other_epoch: int | None = None
               ) -> LandscapeJob:
    points = params[{"2d": "landscape_grid_2d", "interpolation": "interpolation_points"}.get(
        shape, "landscape_grid")]
    return LandscapeJob(model, epoch=epoch, shape=shape, other=other, other_epoch=other_epoch,
                        points=points, span=float(params["landscape_span"]),
                        n_images=params["landscape_images"], direction_seed=0)


def _sam_rhos(params: dict[str, Any]) -> list[float]:
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
    for rho in _sam_rhos(params):
        for shape in ("1d", "2d"):
            named[f"sam{rho:g}/{shape}"] = _landscape(params, sam(scale, seed, rho), final, shape)
    named["interp/early->final"] = _landscape(params, sgd, params["early_epoch"],
                                              "interpolation", sgd, final)
    named["interp/sgd->lsam"] = _landscape(params, sgd, final, "interpolation",
                                           lsam(scale, seed, params["lsam_rho"]), final)
    return named


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    scale = spec.scale
    _check_epochs(scale, params)
    planned: list[Job] = []
    for seed in params["seeds"]:
        planned += [transfer_job(scale, params, seed), sharpness_job(scale, params, seed)]
    return planned + list(landscape_jobs(scale, params).values())


# -- findings -------------------------------------------------------------------------------
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

    transfers = [outputs[transfer_job(scale, params, s).key()] for s in seeds]
    sharp = [outputs[sharpness_job(scale, params, s).key()] for s in seeds]
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
    for name, job in landscape_jobs(scale, params).items():
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

    findings = {
        "window": window,
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
        "sam_curvature_by_rho": {f"{r:g}": curvature(f"sam{r:g}") for r in _sam_rhos(params)},
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
        "sam_rhos": _sam_rhos(params),
        "lsam_rho": float(params["lsam_rho"]),
        "landscapes": landscapes,
        "findings": findings,
    }


def _pct(relative: float | None) -> str:
    return "n/a" if relative is None else f"{100 * relative:+.0f} %"


# -- figures (data in, figure out; the notebook only shows them) -----------------------------
def sharpness_figure(data: dict[str, Any]):
    """Fig. 5: top eigenvalue, trace and mean success rate against epoch in three stacked
    panels with decays marked; a slider switches between the seed mean (±2 std) and each seed.
    """
    from plotly.subplots import make_subplots

    from flatness.plots import curve_traces, slider_figure

    panels = (("top_eigenvalue", "largest Hessian eigenvalue"), ("trace", "Hessian trace"),
              ("success", "mean success rate"))
    base = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                         subplot_titles=[title for _, title in panels])
    for row in (1, 2, 3):
        for d in data["decay_epochs"]:
            base.add_vline(x=d, line={"dash": "dot", "color": "grey", "width": 1}, row=row,
                           col=1)
    base.update_xaxes(title_text="epoch", row=3, col=1)
    base.update_layout(height=720, hovermode="x unified",
                       title="Sharpness and transferability over training (dotted: decays)")

    def frame(source: dict[str, Any]) -> list[Any]:
        traces = []
        for row, (key, title) in enumerate(panels, start=1):
            x = data["transfer_epochs"] if key == "success" else data["sharpness_epochs"]
            series = {title: (source[key]["mean"], source[key]["std"])}
            for trace in curve_traces(x, series, colors={title: _COLORS[key]}):
                trace.update(xaxis=f"x{row if row > 1 else ''}",
                             yaxis=f"y{row if row > 1 else ''}", showlegend=False)
                traces.append(trace)
        return traces

    mean = {**data["sharpness"], "success": {"mean": data["success_mean"],
                                             "std": data["success_std"]}}
    frames = {"mean": frame(mean)}
    for seed, values in data["per_seed"].items():
        frames[f"seed {seed}"] = frame({k: {"mean": v, "std": [0.0] * len(v)}
                                        for k, v in values.items()})
    fig = slider_figure(frames, "surrogate", layout=base.layout, shared_yrange=False)
    return fig


_COLORS = {"top_eigenvalue": "#ef553b", "trace": "#636efa", "success": "#ffa15a"}


def landscape_grids(data: dict[str, Any], names: list[str], split: str = "train"
                    ) -> tuple[dict[str, Any], list[float], list[float]]:
    """2-D loss grids as ``surface_with_slider`` wants them (rows: direction 2, columns:
    direction 1), keyed by the landscape name without its shape suffix."""
    grids, alphas, betas = {}, [], []
    for name in names:
        entry = data["landscapes"][f"{name}/2d"]
        alphas, betas = entry["alphas"], entry["betas"]
        grids[name] = np.asarray(entry[f"{split}_loss"]).T  # stored alphas x betas
    return grids, alphas, betas


def model_label(name: str, data: dict[str, Any]) -> str:
    """A reader's name for a landscape model: ``sgd@12`` -> ``SGD epoch 12 (early-stopped)``."""
    if name.startswith("sgd@"):
        epoch = int(name[4:])
        tags = {data["findings"]["early_epoch"]: " (early-stopped)",
                data["epochs"]: " (fully trained)"}
        return f"SGD epoch {epoch}{tags.get(epoch, '')}"
    rho = float(name[3:])
    return f"SAM ρ={rho:g}" + (" (l-SAM)" if rho == data["lsam_rho"] else "")


def decay_table(data: dict[str, Any]) -> str:
    """Markdown table: each metric at each decay, after it, and its renewed rise."""
    f = data["findings"]
    rows = ["| metric | decay | at decay | next epochs | change | lowest after (epoch) | "
            "end of segment (epoch) | rise |", "|---|---|---|---|---|---|---|---|"]
    for m, label in (("top_eigenvalue", "largest eigenvalue"), ("trace", "trace")):
        for drop, seg in zip(f["drops"][m], f["rebounds"][m]):
            low = "n/a" if seg["extreme_epoch"] is None else \
                f"{fmt(seg['extreme'])} ({seg['extreme_epoch']})"
            end = "n/a" if seg["extreme_epoch"] is None else \
                f"{fmt(seg['end_value'])} ({seg['end']})"
            rows.append(f"| {label} | {drop['decay']} | {fmt(drop['before'])} | "
                        f"{fmt(drop['after'])} | {_pct(drop['relative'])} | {low} | {end} | "
                        f"{_pct(seg['relative'])} |")
    return "\n".join(rows)


def landscape_table(data: dict[str, Any]) -> str:
    """Markdown table of the flatness measures of every landscape model (train loss)."""
    rows = ["| model | train loss | test acc | curvature at 0 | rise at half span | "
            "rise at full span | mean 2-D rise |", "|---|---|---|---|---|---|---|"]
    for key, entry in data["landscapes"].items():
        name, shape = key.rsplit("/", 1)
        if shape != "1d":
            continue
        m = entry["metrics"]
        i0 = int(np.argmin(np.abs(np.asarray(entry["alphas"]))))
        surface = data["landscapes"].get(f"{name}/2d", {}).get("metrics", {})
        rows.append(f"| {model_label(name, data)} | {fmt(m['loss_at_0'])} | "
                    f"{fmt(entry['test_acc'][i0])} | {fmt(m['curvature'])} | "
                    f"{fmt(m['rise_half'])} | {fmt(m['rise_full'])} | "
                    f"{fmt(surface.get('mean_rise'))} |")
    return "\n".join(rows)


CHAPTER = Chapter(
    name="sharpness",
    title="Sharpness",
    notebook="03_sharpness",
    defaults=defaults,
    jobs=jobs,
    summarize=summarize,
    validate=validate,
    summary_version=2,  # 2: declines of transferability carry their seed-paired spread
)
