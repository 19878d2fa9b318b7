"""Figures and tables of chapter 4 (minimizers): its summary in, plotly figures and markdown
out (the summary is :mod:`flatness.study.analysis.minimizers`'s)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from flatness.minimizers import get_minimizer_class
from flatness.plots.figures import PALETTE, bar_per_target, curve_traces, slider_figure
from flatness.study.analysis.minimizers import ES, FULL


def _bars_of(entry: dict[str, Any], targets: list[str]) -> dict[str, tuple[float, float]]:
    return {t: (m, s) for t, m, s in zip(targets, entry["per_target_mean"],
                                         entry["per_target_std"])}


def per_target_bars(data: dict[str, Any], key: str, title: str | None = None
                    ) -> go.Figure:
    """Success per target of surrogate ``key`` beside the two SGD baselines (±2 std)."""
    targets = data["targets"]
    values = {FULL: _bars_of(data["fully_trained"], targets),
              ES: _bars_of(data["early_stopped"], targets)}
    if key != "sgd":
        values[key] = _bars_of(data["surrogates"][key], targets)
    return bar_per_target(values, n_std=2.0, title=title, yaxis_title="success rate")


def rho_slider(data: dict[str, Any], minimizer: str = "sam") -> go.Figure:
    """A slider over ``minimizer``'s rho grid: success per target at each rho."""
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


def rho_curves(data: dict[str, Any], metric: str = "success") -> go.Figure:
    """``metric`` against rho (log axis), one curve per minimizer with ±2 std bands; the SGD
    baselines as horizontal lines."""
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


def tradeoff_scatter(data: dict[str, Any]) -> go.Figure:
    """Success against natural accuracy, one point per surrogate (error bars: ±2 std)."""
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


def fixed_hyperparameters_markdown(scale: dict[str, Any]) -> str:
    """What a result's scale sets besides rho for its minimizers, against their defaults (the
    papers'), from the scale stored with the result."""
    fixed = scale.get("minimizers", {}).get("hyperparameters") or {}
    if not fixed:
        return ("Besides rho, every minimizer trains with its default hyper-parameters (the "
                "papers'; `python -m flatness minimizers` lists them).")
    parts = []
    for name, values in sorted(fixed.items()):
        defaults = get_minimizer_class(name).hyperparameters
        parts += [f"{name} {key} = {value:g} (default {defaults[key]:g})"
                  for key, value in sorted(values.items())]
    return ("Besides rho, the minimizers train with their default hyper-parameters (the "
            f"papers'; `python -m flatness minimizers` lists them), except, at this scale: "
            f"{'; '.join(parts)}.")
