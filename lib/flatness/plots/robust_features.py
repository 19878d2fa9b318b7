"""Figures and tables of chapter 1 (robust and non-robust features): its summary in, plotly
figures and markdown out (the summary is :mod:`flatness.study.analysis.robust_features`'s)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from flatness.plots.figures import curves_with_band, slider_figure
from flatness.study.chapters.robust_features import LABELS
from flatness.study.report import fmt


def datasets_table(data: dict[str, Any]) -> str:
    """How each derived dataset was built and how well the construction did its job."""
    rows = ["| dataset | construction | source model | source test acc | images | images/s "
            "| representation distance (start → end) | labels changed |",
            "|---|---|---|---|---|---|---|---|"]
    for kind, info in data["datasets"].items():
        dist = info.get("representation_distance")
        changed = info.get("relabelled_fraction_changed")
        rows.append(
            f"| {LABELS[kind]} | {info['construction']} | "
            f"{'robust (L2 PGD training)' if info['source_model_robust'] else 'standard'} | "
            f"{fmt(info.get('source_model_test_acc'))} | {info['images']} | "
            f"{fmt(info.get('images_per_s'), 1)} | "
            + (f"{fmt(dist['start_mean'])} → {fmt(dist['end_mean'])}" if dist else "-")
            + f" | {fmt(changed, 2) if changed is not None else '-'} |")
    return "\n".join(rows)


def accuracy_table(data: dict[str, Any]) -> str:
    """CIFAR-10 test accuracy of the surrogates and of the Fig. 3 targets, against chance."""
    acc = data["findings"]["accuracy"]
    rows = ["| trained on | role | CIFAR-10 test accuracy |", "|---|---|---|"]
    for name, s in data["surrogate_accuracy"].items():
        rows.append(f"| {LABELS[name]} | surrogate ({data['target_arch']}) | {fmt(s['mean'])} |")
    for name, t in acc["targets"].items():
        rows.append(f"| {LABELS[name]} | Fig. 3 target ({data['target_arch']}) | "
                    f"{fmt(t['test_acc'])} |")
    rows.append("")
    rows.append(f"Chance is {acc['chance']:.2f}; with {acc['n_eval']} test images, two binomial "
                f"standard errors of a chance-level accuracy are {acc['margin']:.3f}.")
    return "\n".join(rows)


def robustness_table(data: dict[str, Any], seeds: list[int]) -> str:
    """Clean and L2-robust accuracy of each surrogate (mean ± std over ``seeds``)."""
    robustness = data["robustness"]
    budgets = next(iter(robustness.values()))["eps"]
    rows = ["| trained on | clean | " + " | ".join(f"L2 eps {e:g}" for e in budgets) + " |",
            "|---|---|" + "---|" * len(budgets)]
    for name, r in robustness.items():
        cells = [f"{fmt(m)} ± {fmt(s)}" for m, s in zip(r["robust_mean"], r["robust_std"])]
        rows.append(f"| {LABELS[name]} | {fmt(r['clean_mean'])} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(f"{next(iter(robustness.values()))['n_images']} CIFAR-10 test images; "
                f"seeds {seeds}.")
    return "\n".join(rows)


def _mark_best_epoch(fig: go.Figure, early_stopping: dict[str, Any]) -> go.Figure:
    """A diamond at the best epoch of a curve (its early-stopping entry)."""
    fig.add_trace(go.Scatter(x=[early_stopping["best_epoch"]],
                             y=[early_stopping["best_success"]], mode="markers",
                             marker={"symbol": "diamond", "size": 10}, name="best epoch"))
    return fig


def surrogate_curve(data: dict[str, Any], name: str, target: str = "mean") -> go.Figure:
    """Success against epoch of the surrogate trained on ``name``, on one target or their mean
    (band: ±2 std over seeds), its best epoch marked."""
    s = data["surrogates"][name]
    if target == "mean":
        values = (s["success_mean"], s["success_std"])
    else:
        i = s["targets"].index(target)
        values = ([row[i] for row in s["per_target_mean"]],
                  [row[i] for row in s["per_target_std"]])
    fig = curves_with_band(s["epochs"], {f"{LABELS[name]} / {target}": values},
                           decays=data["decay_epochs"], yaxis_title="success rate")
    return _mark_best_epoch(fig, s["early_stopping"])


def surrogate_controls(data: dict[str, Any]) -> dict[str, list[str]]:
    """The values of :func:`surrogate_curve`'s controls: every training set, every target."""
    first = next(iter(data["surrogates"].values()))
    return {"name": list(data["surrogates"]), "target": ["mean", *first["targets"]]}


def surrogates_dropdown(data: dict[str, Any]) -> go.Figure:
    """Fig. 2 analogue: one training set at a time (a dropdown), with a shared y axis."""
    frames = {LABELS[n]: surrogate_curve(data, n) for n in data["surrogates"]}
    fig = slider_figure(frames, slider_label="surrogate trained on", control="dropdown")
    fig.update_layout(title="Transferability against training epoch (CIFAR-10 targets)",
                      height=440)
    return fig


def surrogates_overlay(data: dict[str, Any]) -> go.Figure:
    """Every training set's mean success curve in one figure."""
    first = next(iter(data["surrogates"].values()))
    return curves_with_band(first["epochs"], {
        LABELS[n]: (s["success_mean"], s["success_std"]) for n, s in data["surrogates"].items()},
        decays=data["decay_epochs"], title="Every training set", yaxis_title="success rate")


def surrogates_accuracy(data: dict[str, Any]) -> go.Figure:
    """Every surrogate's CIFAR-10 test accuracy against epoch."""
    first = next(iter(data["surrogates"].values()))
    return curves_with_band(first["epochs"], {
        LABELS[n]: s["test_acc_mean"] for n, s in data["surrogates"].items()},
        decays=data["decay_epochs"], title="Surrogate accuracy on the CIFAR-10 test set",
        yaxis_title="accuracy")


def target_curve(data: dict[str, Any], name: str) -> go.Figure:
    """Success of the standard surrogate towards targets trained on ``name`` (with their
    budget), its best epoch marked."""
    s = data["towards_targets"][name]
    fig = curves_with_band(
        s["epochs"], {f"towards {LABELS[name]} (eps {s['eps'] * 255:.0f}/255)":
                      (s["success_mean"], s["success_std"])},
        decays=data["decay_epochs"], yaxis_title="success rate")
    return _mark_best_epoch(fig, s["early_stopping"])


def targets_dropdown(data: dict[str, Any]) -> go.Figure:
    """Fig. 3 analogue: one target training set at a time (a dropdown; each its own y axis)."""
    frames = {LABELS[n]: target_curve(data, n) for n in data["towards_targets"]}
    fig = slider_figure(frames, slider_label="target trained on", control="dropdown",
                        shared_yrange=False)
    fig.update_layout(title=f"Standard surrogate towards {data['target_arch']} targets",
                      height=440)
    return fig
