"""Chapter 4, minimizers: surrogates trained to minimise loss value *and* sharpness transfer
better than fully trained and early-stopped SGD; large neighbourhoods (l-SAM) transfer best,
often at a cost in natural accuracy (PAPER.md finding 4).

Every minimizer of the scale's design (at the paper's: SAM, ASAM, GSAM, LookSAM, GAM, SAGM,
SWA, and SGD) is trained with the scale's recipe, over a rho grid where it has a rho, for
several seeds. The final epoch of each surrogate is attacked (BIM L-inf) and scored on the
target zoo; natural accuracy comes from the run's metrics and sharpness (top Hessian
eigenvalue, trace) from the final checkpoint, with the scale's Hessian settings (SGD's
sharpness over training is chapter 3's very job). The baselines are fully trained SGD and
early-stopped SGD: the best epoch of the standard SGD run's transfer curve (chapter 2's job).
Choosing that epoch on the very targets it is scored on is optimistic for early stopping, as
in the paper. l-SAM is SAM with the largest rho of its grid.

From the notebook to the BIM step: ``notebooks/04_minimizers.ipynb`` asks
:func:`~flatness.study.chapter.chapter_result` for this chapter's result; the jobs are built
here (:func:`final_job`: a :class:`~flatness.study.jobs.TransferJob` per surrogate and seed);
``TransferJob.compute`` (``study/jobs.py``) attacks each checkpoint with
:func:`flatness.attacks.attack`, whose update is in ``attacks/iterative.py``. The claims are
:mod:`flatness.study.analysis.minimizers`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import Chapter
from flatness.study.common import (
    check_names,
    check_seeds,
    checkpoint_epochs,
    default_seeds,
    hessian_defaults,
    hessian_job,
    minimizer_surrogate,
    scale_attack,
    seed_stats,
    sgd_sharpness_job,
    standard_sgd,
)
from flatness.study.context import StudyContext, StudySpec
from flatness.study.jobs import Job, SharpnessJob, TransferJob
from flatness.training import TrainConfig

ES, FULL = "SGD (early stopped)", "SGD (fully trained)"



def has_rho(name: str) -> bool:
    from flatness.minimizers import get_minimizer_class

    return "rho" in get_minimizer_class(name).hyperparameters


def defaults(scale: Scale) -> dict[str, Any]:
    """The scale's design (its ``minimizers`` section; the Hessian settings of chapter 3, so
    that SGD's sharpness is computed once for both)."""
    design = scale.minimizers
    return {
        "seeds": default_seeds(scale),
        "minimizers": list(design.names),
        "rhos": {m: list(r) for m, r in design.rhos.items()},
        "minimizer_seeds": {m: list(v) for m, v in design.seeds.items()},
        "sharpness": True,
        **hessian_defaults(scale),
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def validate(params: dict[str, Any]) -> None:
    from flatness.minimizers import MINIMIZERS

    check_seeds(params)
    names = params["minimizers"]
    if not isinstance(names, list) or not names:
        raise FlatnessError(f"minimizers must be a non-empty list of names among: "
                            f"{', '.join(MINIMIZERS)}")
    check_names(params, "minimizers", tuple(MINIMIZERS), what="minimizer")
    rhos = params["rhos"]
    if not isinstance(rhos, dict):
        raise FlatnessError(f"rhos must map a minimizer to a list of rho, got {rhos!r}")
    for name, grid in rhos.items():
        if name not in MINIMIZERS:
            raise FlatnessError(f"rhos: unknown minimizer {name!r}; choose among: "
                                f"{', '.join(MINIMIZERS)}")
        if not has_rho(name):
            raise FlatnessError(f"rhos: minimizer {name!r} has no rho; remove it from rhos")
        if not isinstance(grid, list) or not grid or not all(_is_number(r) for r in grid):
            raise FlatnessError(f"rhos[{name!r}] must be a non-empty list of numbers, "
                                f"got {grid!r}")
        if any(r < 0 for r in grid):
            raise FlatnessError(f"rhos[{name!r}]: rho must be >= 0, got {grid!r}")
        if len(set(grid)) != len(grid):
            raise FlatnessError(f"rhos[{name!r}] lists a rho twice: {grid!r}")
    per_minimizer = params["minimizer_seeds"]
    if not isinstance(per_minimizer, dict):
        raise FlatnessError("minimizer_seeds must map a minimizer to a list of seeds")
    for name, seeds in per_minimizer.items():
        if name not in MINIMIZERS:
            raise FlatnessError(f"minimizer_seeds: unknown minimizer {name!r}")
        check_seeds({"seeds": seeds})
    if not isinstance(params["sharpness"], bool):
        raise FlatnessError(f"sharpness must be True or False, got {params['sharpness']!r}")
    for key in ("sharpness_images", "sharpness_batch", "trace_samples", "max_iter"):
        value = params[key]
        if key in ("trace_samples", "max_iter") and value is None:
            continue  # the library's adaptive rule
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise FlatnessError(f"{key} must be an integer >= 1, got {value!r}")
    if not _is_number(params["eps"]) or params["eps"] <= 0:
        raise FlatnessError(f"eps must be a number > 0, got {params['eps']!r}")
    steps = params["attack_steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise FlatnessError(f"attack_steps must be an integer >= 1, got {steps!r}")


# -- the surrogates ---------------------------------------------------------------------------
def rho_grid(params: dict[str, Any], name: str) -> list[float | None]:
    """The rhos ``name`` is trained with ([None] for a minimizer without rho; its default rho
    when ``rhos`` does not list it)."""
    if not has_rho(name):
        return [None]
    if name in params["rhos"]:
        return [float(r) for r in params["rhos"][name]]
    from flatness.minimizers import get_minimizer_class

    return [float(get_minimizer_class(name).hyperparameters["rho"])]


def variants(params: dict[str, Any]) -> list[tuple[str, float | None]]:
    """Every (minimizer, rho) pair, SGD (the fully trained baseline) first."""
    names = ["sgd", *[n for n in params["minimizers"] if n != "sgd"]]
    return [(name, rho) for name in names for rho in rho_grid(params, name)]


def label(name: str, rho: float | None) -> str:
    return name if rho is None else f"{name} ρ={rho:g}"


def seeds_for(params: dict[str, Any], name: str) -> list[int]:
    return list(params["minimizer_seeds"].get(name, params["seeds"]))


def config(scale: Scale, name: str, rho: float | None, seed: int) -> TrainConfig:
    """The training run of one surrogate (same configurations as chapters 2, 3 and 5)."""
    return minimizer_surrogate(scale, seed, name, rho)


def curve_job(scale: Scale, params: dict[str, Any], seed: int) -> TransferJob:
    """Chapter 2's standard-schedule transfer curve (every checkpoint): early stopping."""
    return TransferJob(standard_sgd(scale, seed), scale_attack(scale, params),
                       epochs=checkpoint_epochs(scale))


def final_job(scale: Scale, params: dict[str, Any], name: str, rho: float | None, seed: int
              ) -> TransferJob:
    """The final-epoch attack of one surrogate; fully trained SGD is the last point of the
    early-stopping curve when the curve reaches the final epoch (one attack, not two)."""
    if name == "sgd" and scale.epochs in checkpoint_epochs(scale):
        return curve_job(scale, params, seed)
    return TransferJob(config(scale, name, rho, seed), scale_attack(scale, params))


def sharpness_job(scale: Scale, params: dict[str, Any], name: str, rho: float | None,
                  seed: int) -> SharpnessJob:
    """Top eigenvalue and trace of the final checkpoint. For SGD: chapter 3's job over its
    checkpoints (same key with the scale's ``hessian`` settings), which also gives the
    sharpness of the early-stopped epoch when that epoch is among them."""
    if name == "sgd":
        return sgd_sharpness_job(scale, params, seed, scale.hessian.every)
    return hessian_job(config(scale, name, rho, seed), params)


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    scale = spec.scale
    planned: list[Job] = [curve_job(scale, params, seed) for seed in params["seeds"]]
    for name, rho in variants(params):
        for seed in seeds_for(params, name):
            planned.append(final_job(scale, params, name, rho, seed))
            if params["sharpness"]:
                planned.append(sharpness_job(scale, params, name, rho, seed))
    return list({job.key(): job for job in planned}.values())


#: CPU seconds per training step relative to SGD (benchmarks/minimizers.py, resnet18@0.25,
#: batch 128, 1 thread: SGD 0.23 s, SAM/ASAM/GSAM/SAGM 2.0x, LookSAM 1.2x, GAM 4.0x).
STEP_COST = {"sgd": 1.0, "sam": 2.0, "asam": 2.0, "gsam": 2.0, "looksam": 1.2, "gam": 4.0,
             "sagm": 2.0, "swa": 1.0}


def cost_estimate(scale: Scale, params: dict[str, Any], sgd_step_s: float = 0.23,
                  shared: set[tuple[str, float | None]] | None = None) -> dict[str, Any]:
    """Training cost of the chapter in CPU seconds (``sgd_step_s`` per SGD step), not counting
    the SGD runs (chapter 2's) nor the runs in ``shared`` (e.g. chapter 5's SAM and l-SAM)."""
    steps = -(-(scale.train_subset or 50_000) // scale.batch_size) * scale.epochs
    runs, total = 0, 0.0
    for name, rho in variants(params):
        if name == "sgd" or (name, rho) in (shared or set()):
            continue
        n = len(seeds_for(params, name))
        runs += n
        total += n * steps * sgd_step_s * STEP_COST.get(name, 2.0)
    return {"runs": runs, "sgd_run_s": steps * sgd_step_s, "train_s": total}


# -- the summary ------------------------------------------------------------------------------
def _row(output: dict[str, Any], epoch: int) -> int:
    if epoch not in output["epochs"]:
        raise FlatnessError(f"transfer output of run {output.get('run')} has no epoch {epoch}")
    return output["epochs"].index(epoch)


def _stats(values: list[Any]) -> tuple[Any, Any]:
    s = seed_stats(values)
    return s["mean"], s["std"]


def _entry(name: str, rho: float | None, seeds: list[int], per_seed: list[dict[str, Any]]
           ) -> dict[str, Any]:
    """Seed statistics of one surrogate from per-seed rows (success per target, accuracy,
    sharpness)."""
    success, success_std = _stats([r["mean"] for r in per_seed])
    per_target, per_target_std = _stats([r["success"] for r in per_seed])
    acc = [r["test_acc"] for r in per_seed]
    acc_mean, acc_std = _stats(acc) if None not in acc else (None, None)
    entry = {"minimizer": name, "rho": rho, "seeds": seeds,
             "per_seed": {"seeds": seeds, "success": [r["mean"] for r in per_seed],
                          **{key: [r.get(key) for r in per_seed]
                             for key in ("test_acc", "top_eigenvalue", "trace")}},
             "success_mean": success, "success_std": success_std,
             "per_target_mean": per_target, "per_target_std": per_target_std,
             "test_acc_mean": acc_mean, "test_acc_std": acc_std}
    for key in ("top_eigenvalue", "trace"):
        values = [r.get(key) for r in per_seed]
        mean, std = _stats(values) if None not in values else (None, None)
        entry[f"{key}_mean"], entry[f"{key}_std"] = mean, std
    return entry


def _transfer_row(output: dict[str, Any], epoch: int) -> dict[str, Any]:
    i = _row(output, epoch)
    return {"mean": output["mean"][i], "success": output["success"][i],
            "test_acc": output["test_acc"][i]}


def _sharpness_row(output: dict[str, Any] | None, epoch: int) -> dict[str, Any]:
    if output is None or epoch not in output["epochs"]:
        return {}
    i = output["epochs"].index(epoch)
    return {"top_eigenvalue": output["top_eigenvalue"][i], "trace": output["trace"][i]}


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    curves = [outputs[curve_job(scale, params, seed).key()] for seed in params["seeds"]]
    targets = curves[0]["targets"]
    epochs = curves[0]["epochs"]
    curve_mean, curve_std = _stats([c["mean"] for c in curves])
    best_i = int(np.argmax(curve_mean))
    es_rows = [_transfer_row(c, epochs[best_i]) for c in curves]
    if params["sharpness"]:
        for row, seed in zip(es_rows, params["seeds"]):
            row.update(_sharpness_row(
                outputs.get(sharpness_job(scale, params, "sgd", None, seed).key()),
                epochs[best_i]))
    early = _entry("sgd", None, params["seeds"], es_rows)
    early.update(epoch=epochs[best_i], label=ES)

    surrogates: dict[str, dict[str, Any]] = {}
    for name, rho in variants(params):
        seeds = seeds_for(params, name)
        rows = []
        for seed in seeds:
            row = _transfer_row(outputs[final_job(scale, params, name, rho, seed).key()],
                                scale.epochs)
            if params["sharpness"]:
                row.update(_sharpness_row(
                    outputs.get(sharpness_job(scale, params, name, rho, seed).key()),
                    scale.epochs))
            rows.append(row)
        surrogates[label(name, rho)] = _entry(name, rho, seeds, rows)
    full = dict(surrogates[label("sgd", None)], label=FULL)

    for entry in surrogates.values():
        entry["gain_vs_early_stopped_points"] = 100 * (entry["success_mean"]
                                                       - early["success_mean"])
        entry["gain_vs_full_points"] = 100 * (entry["success_mean"] - full["success_mean"])
    ranking = sorted([*((k, v["success_mean"]) for k, v in surrogates.items() if k != "sgd"),
                      (FULL, full["success_mean"]), (ES, early["success_mean"])],
                     key=lambda kv: -kv[1])
    sam = [rho for name, rho in variants(params) if name == "sam"]
    lsam = None
    if sam:
        rho = max(sam)
        lsam = {"rho": rho, "label": label("sam", rho), **surrogates[label("sam", rho)]}
    return {
        "targets": targets,
        "epochs": scale.epochs,
        "decay_epochs": list(scale.decay_epochs),
        "sgd_curve": {"epochs": epochs, "success_mean": curve_mean, "success_std": curve_std},
        "early_stopped": early,
        "fully_trained": full,
        "surrogates": surrogates,
        "minimizers": {name: [label(name, r) for r in rho_grid(params, name)]
                       for name in dict.fromkeys(n for n, _ in variants(params))},
        "lsam": lsam,
        "ranking": [k for k, _ in ranking],
    }


# -- figures and tables (plotly; used by the notebook) ----------------------------------------
def _bars_of(entry: dict[str, Any], targets: list[str]) -> dict[str, tuple[float, float]]:
    return {t: (m, s) for t, m, s in zip(targets, entry["per_target_mean"],
                                         entry["per_target_std"])}


def per_target_bars(data: dict[str, Any], key: str, title: str | None = None):
    """Success per target of surrogate ``key`` beside the two SGD baselines (±2 std)."""
    from flatness.plots import bar_per_target

    targets = data["targets"]
    values = {FULL: _bars_of(data["fully_trained"], targets),
              ES: _bars_of(data["early_stopped"], targets)}
    if key != "sgd":
        values[key] = _bars_of(data["surrogates"][key], targets)
    return bar_per_target(values, n_std=2.0, title=title, yaxis_title="success rate")


def rho_slider(data: dict[str, Any], minimizer: str = "sam"):
    """A slider over ``minimizer``'s rho grid: success per target at each rho."""
    from flatness.plots import slider_figure

    keys = data["minimizers"][minimizer]
    frames = {data["surrogates"][k]["rho"]: per_target_bars(data, k) for k in keys}
    fig = slider_figure(frames, slider_label="rho")
    fig.update_layout(title=f"{minimizer}: success rate per target against rho "
                      "(bars: ±2 std over seeds)", height=460)
    return fig


_AXES = {"success": ("success_mean", "success_std", "mean success rate"),
         "test_acc": ("test_acc_mean", "test_acc_std", "natural (test) accuracy"),
         "top_eigenvalue": ("top_eigenvalue_mean", "top_eigenvalue_std",
                            "top Hessian eigenvalue"),
         "trace": ("trace_mean", "trace_std", "Hessian trace")}


def rho_curves(data: dict[str, Any], metric: str = "success"):
    """``metric`` against rho (log axis), one curve per minimizer with ±2 std bands; the SGD
    baselines as horizontal lines."""
    import plotly.graph_objects as go

    from flatness.plots import PALETTE, curve_traces

    mean_key, std_key, title = _AXES[metric]
    fig = go.Figure()
    for i, (name, keys) in enumerate(data["minimizers"].items()):
        entries = [data["surrogates"][k] for k in keys]
        if entries[0]["rho"] is None or any(e[mean_key] is None for e in entries):
            continue
        series = {name + (" (adaptive rho)" if name == "asam" else ""):
                  ([e[mean_key] for e in entries], [e[std_key] for e in entries])}
        fig.add_traces(curve_traces([e["rho"] for e in entries], series,
                                    colors={s: PALETTE[i % len(PALETTE)] for s in series}))
    for entry, dash in ((data["fully_trained"], "dash"), (data["early_stopped"], "dot")):
        if entry.get(mean_key) is not None:
            fig.add_hline(y=entry[mean_key], line={"dash": dash, "color": "grey"},
                          annotation_text=entry["label"], annotation_position="top left")
    fig.update_layout(title=f"{title} against rho", xaxis_title="rho (log scale)",
                      yaxis_title=title, xaxis_type="log", height=440)
    return fig


def tradeoff_scatter(data: dict[str, Any]):
    """Success against natural accuracy, one point per surrogate (error bars: ±2 std)."""
    import plotly.graph_objects as go

    from flatness.plots import PALETTE

    fig = go.Figure()
    groups = {name: [data["surrogates"][k] for k in keys]
              for name, keys in data["minimizers"].items() if name != "sgd"}
    groups[FULL] = [data["fully_trained"]]
    groups[ES] = [data["early_stopped"]]
    for i, (name, entries) in enumerate(groups.items()):
        entries = [e for e in entries if e["test_acc_mean"] is not None]
        if not entries:
            continue
        fig.add_trace(go.Scatter(
            x=[e["test_acc_mean"] for e in entries], y=[e["success_mean"] for e in entries],
            error_x={"array": [2 * e["test_acc_std"] for e in entries]},
            error_y={"array": [2 * e["success_std"] for e in entries]},
            mode="markers+text", name=name, marker={"size": 10,
                                                    "color": PALETTE[i % len(PALETTE)]},
            text=["" if e["rho"] is None else f"ρ={e['rho']:g}" for e in entries],
            textposition="top center"))
    fig.update_layout(title="Transferability against natural accuracy (the l-SAM trade-off)",
                      xaxis_title="natural (test) accuracy", yaxis_title="mean success rate",
                      height=460)
    return fig


def ranking_markdown(data: dict[str, Any]) -> str:
    """Surrogates ranked by mean success, with the gain over both SGD baselines in points."""
    entries = {**{k: v for k, v in data["surrogates"].items() if k != "sgd"},
               FULL: data["fully_trained"], ES: data["early_stopped"]}
    es, full = data["early_stopped"]["success_mean"], data["fully_trained"]["success_mean"]
    lines = ["| rank | surrogate | seeds | mean success (±2 std) | vs early-stopped SGD | "
             "vs fully trained SGD | test acc | top eigenvalue |",
             "|---|---|---|---|---|---|---|---|"]
    for rank, key in enumerate(data["ranking"], 1):
        e = entries[key]
        name = f"**{key}** (l-SAM)" if data["lsam"] and key == data["lsam"]["label"] else key
        acc = "n/a" if e["test_acc_mean"] is None else f"{e['test_acc_mean']:.3f}"
        eig = "n/a" if e.get("top_eigenvalue_mean") is None else f"{e['top_eigenvalue_mean']:.3g}"
        band = f" ± {200 * e['success_std']:.1f}" if len(e["seeds"]) > 1 else ""
        lines.append(
            f"| {rank} | {name} | {len(e['seeds'])} | {100 * e['success_mean']:.1f}{band} | "
            f"{100 * (e['success_mean'] - es):+.1f} | "
            f"{100 * (e['success_mean'] - full):+.1f} | {acc} | {eig} |")
    return "\n".join(lines)


CHAPTER = Chapter(
    name="minimizers",
    title="Minimizers",
    notebook="04_minimizers",
    defaults=defaults,
    jobs=jobs,
    summarize=summarize,
    validate=validate,
    summary_version=2,  # 2: every surrogate carries its per-seed values (paired claims)
)
