"""Figures and tables of chapter 5 (complementarity): its summary in, plotly figures and
markdown out (the summary is :mod:`flatness.study.analysis.complementarity`'s)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from flatness.plots.figures import bar_per_target, slider_figure
from flatness.study.analysis.complementarity import gains_over_sgd
from flatness.study.chapters.complementarity import LABELS
from flatness.study.report import fmt


def methods(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Part A's cells, in the chapter's order of methods."""
    return {m: data["methods"][m] for m in data["method_order"]}


def table(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Part B's rows (surrogate -> technique -> cell), in the chapter's order of surrogates."""
    return {r: data["table"][r] for r in data["surrogate_order"]}


def bars(data: dict[str, Any], cells: dict[str, dict[str, Any]], title: str | None
         ) -> go.Figure:
    """Success per target of each cell of ``cells`` (error bars: ±2 std over seeds)."""
    values = {LABELS.get(name, name): {t: (c["per_target_mean"][i], c["per_target_std"][i])
                                       for i, t in enumerate(data["targets"])}
              for name, c in cells.items()}
    return bar_per_target(values, n_std=2.0, title=title, yaxis_title="success rate")


def methods_bars(data: dict[str, Any]) -> go.Figure:
    """Part A: every surrogate-training method under plain BIM, per target."""
    return bars(data, methods(data), "Surrogate-training methods, plain BIM")


def methods_table(data: dict[str, Any]) -> str:
    """Part A as a markdown table: mean success, its spread, the seeds, the test accuracy."""
    rows = ["| method | mean success | ±2 std | seeds | surrogate test accuracy |",
            "|---|---|---|---|---|"]
    for name, c in methods(data).items():
        rows.append(f"| {LABELS.get(name, name)} | {fmt(c['mean'])} | {fmt(2 * c['std'])} | "
                    f"{', '.join(map(str, c['seeds']))} | {fmt(c['test_acc'])} |")
    return "\n".join(rows)


def techniques_dropdown(data: dict[str, Any]) -> go.Figure:
    """Part B per target: every surrogate under one technique at a time (a dropdown)."""
    rows = table(data)
    frames = {col: bars(data, {r: rows[r][col] for r in rows}, None) for col in data["columns"]}
    fig = slider_figure(frames, slider_label="technique", control="dropdown")
    fig.update_layout(title="Surrogates x techniques, per target", height=460, barmode="group")
    return fig


def techniques_heatmap(data: dict[str, Any]) -> go.Figure:
    """Part B's mean success of every surrogate (rows) under every technique (columns)."""
    rows = table(data)
    z = [[rows[r][c]["mean"] for c in data["columns"]] for r in rows]
    text = [[f"{rows[r][c]['mean']:.3f} ± {2 * rows[r][c]['std']:.3f}"
             for c in data["columns"]] for r in rows]
    heat = go.Figure(go.Heatmap(z=z, x=data["columns"], y=[LABELS.get(r, r) for r in rows],
                                text=text, texttemplate="%{text}", colorscale="Viridis",
                                colorbar={"title": "success"}))
    heat.update_layout(title="Mean success rate: surrogate x technique", xaxis_title="technique",
                       yaxis_title="surrogate", height=360)
    return heat


def gains_figure(data: dict[str, Any]) -> go.Figure | None:
    """l-SAM minus SGD under each technique, paired by seed (error bars: ±2 std of the paired
    differences); None when the run has no l-SAM or no SGD row."""
    gains = gains_over_sgd(data)
    if not gains:
        return None
    cols = list(gains)
    fig = go.Figure(go.Bar(
        x=cols, y=[gains[c]["mean"] for c in cols],
        error_y={"type": "data", "array": [2 * gains[c]["std"] for c in cols], "visible": True}))
    fig.update_layout(title="Gain of l-SAM over SGD under each technique",
                      xaxis_title="technique", yaxis_title="success-rate difference")
    return fig


def one_cell(data: dict[str, Any], surrogate: str, technique: str) -> go.Figure:
    """One surrogate under one technique beside fully trained SGD under the same technique
    (always two bars per target: the static figure's frames)."""
    rows = table(data)
    baseline = "sgd" if "sgd" in rows else next(iter(rows))
    cells = {f"{LABELS[baseline]} (baseline)": rows[baseline][technique],
             f"{LABELS.get(surrogate, surrogate)}": rows[surrogate][technique]}
    return bars(data, cells, f"{LABELS.get(surrogate, surrogate)} with {technique}")
