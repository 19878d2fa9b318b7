"""Figures of the regime map: one heatmap per metric over the cells (training images and epochs
across, width down), with a slider over SAM's rho and the late-phase SAM columns (the map's
summary in, a plotly figure out)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from flatness.errors import FlatnessError
from flatness.plots.figures import slider_figure

#: What a heatmap can show: (title, unit scale, whether it depends on rho).
METRICS = {
    "success": ("mean transfer success of the final epoch (%)", 100.0),
    "vs_full": ("SAM − fully trained SGD, paired by seed (points)", 100.0),
    "vs_early_stopped": ("SAM − early-stopped SGD, paired by seed (points)", 100.0),
    "vs_sam": ("late-phase SAM − SAM from the start, paired by seed (points)", 100.0),
    "test_acc": ("test accuracy (%)", 100.0),
    "train_acc": ("training accuracy (%)", 100.0),
    "top_eigenvalue": ("top Hessian eigenvalue", 1.0),
}


#: Slider label of the late-phase columns: ``late 0.05`` is SAM at 0.05 from the last decay on.
LATE = "late "


def _column(cell: dict[str, Any]) -> str:
    return f"{cell['cell']['train_subset']} × {cell['cell']['epochs']} ep"


def _row(cell: dict[str, Any]) -> str:
    return f"width {cell['cell']['width']:g}"


def _axes(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Columns: training images x epochs (by size, then length); rows: widths."""
    ordered = sorted(data["cells"], key=lambda c: (c["cell"]["train_subset"], c["cell"]["epochs"],
                                                   c["cell"]["width"]))
    columns = list(dict.fromkeys(_column(c) for c in ordered))
    rows = list(dict.fromkeys(_row(c) for c in sorted(data["cells"],
                                                       key=lambda c: c["cell"]["width"])))
    return columns, rows


def columns_of(data: dict[str, Any], metric: str) -> list[str]:
    """The slider's steps for ``metric``: every rho (SGD's only where it means something), then
    the late-phase columns (``late 0.05``)."""
    if metric == "vs_sam":
        return [LATE + r for r in data.get("late_rhos", []) if r in data["rhos"]]
    rhos = [r for r in data["rhos"] if not (metric.startswith("vs_") and r == "0")]
    return rhos + [LATE + r for r in data.get("late_rhos", [])]


def cell_value(cell: dict[str, Any], metric: str, column: str) -> float | None:
    """A cell's value of ``metric`` at a rho (``"0.05"``) or a late-phase column
    (``"late 0.05"``); None where it does not apply (SGD's gains over SGD)."""
    if column.startswith(LATE):
        row = cell.get("late_phase", {}).get(column[len(LATE):], {})
    else:
        row = cell["rhos"].get(column, {})
    if metric.startswith("vs_"):
        return row[metric]["mean"] if metric in row else None
    return row.get(f"{metric}_mean")


def heatmap_traces(data: dict[str, Any], metric: str, column: str) -> list[Any]:
    """One heatmap (cells across, widths down) of ``metric`` at a rho or late-phase column,
    values written in."""
    title, factor = METRICS[metric]
    columns, rows = _axes(data)
    z: list[list[float | None]] = [[None] * len(columns) for _ in rows]
    for cell in data["cells"]:
        value = cell_value(cell, metric, column)
        if value is not None:
            z[rows.index(_row(cell))][columns.index(_column(cell))] = factor * value
    text = [["" if v is None else f"{v:.1f}" if factor > 1 else f"{v:.3g}" for v in r]
            for r in z]
    diverging = metric.startswith("vs_")
    return [go.Heatmap(x=columns, y=rows, z=z, text=text,
                       texttemplate="%{text}", colorscale="RdBu" if diverging else "Viridis",
                       zmid=0 if diverging else None, colorbar={"title": title.split(" (")[0]},
                       hovertemplate="%{x} images, %{y}: %{z:.2f}<extra></extra>")]


def regime_heatmap(data: dict[str, Any], metric: str = "vs_full") -> go.Figure:
    """``metric`` over the map, with a slider over SAM's rho and the late-phase columns (the
    same colour range at every step, so that moving the slider compares them honestly)."""
    if metric not in METRICS:
        raise FlatnessError(f"unknown metric {metric!r}; choose among: {', '.join(METRICS)}")
    title, _ = METRICS[metric]
    frames = {column: heatmap_traces(data, metric, column)
              for column in columns_of(data, metric)}
    if not frames:
        raise FlatnessError(f"the map has no {metric!r} to show (no late-phase column at a "
                            "rho of the grid)")
    values = [v for ts in frames.values() for row in ts[0].z for v in row if v is not None]
    layout = go.Layout(title=title, xaxis_title="training images × epochs", yaxis_title="",
                       height=360)
    fig = slider_figure(frames, slider_label="rho", layout=layout, shared_yrange=False)
    if values:
        low, high = min(values), max(values)
        if metric.startswith("vs_"):
            high = max(abs(low), abs(high))
            low = -high
        fig.update_traces(zmin=low, zmax=high, zmid=None)
        for frame in fig.frames:
            for trace in frame.data:
                trace.update(zmin=low, zmax=high, zmid=None)
    return fig


def early_stopping_heatmap(data: dict[str, Any]) -> go.Figure:
    """SGD's early-stopping gain (best checkpoint − final, paired by seed) over the map."""
    columns, rows = _axes(data)
    z: list[list[float | None]] = [[None] * len(columns) for _ in rows]
    for cell in data["cells"]:
        z[rows.index(_row(cell))][columns.index(_column(cell))] = (
            100 * cell["early_stopping"]["mean"])
    text = [["" if v is None else f"{v:+.1f}" for v in r] for r in z]
    fig = go.Figure(go.Heatmap(x=columns, y=rows, z=z, text=text,
                               texttemplate="%{text}", colorscale="Viridis",
                               colorbar={"title": "points"}))
    fig.update_layout(title="Early stopping's gain for SGD: best checkpoint − final (points)",
                      xaxis_title="training images × epochs", height=360)
    return fig


def _pm(entry: dict[str, Any] | None) -> str:
    """A paired gain as ``+1.2 ± 3.4`` points: ± the spread a gain must exceed (2 std over
    seeds, at least 1 point: :func:`flatness.study.common.paired`), as the README says it."""
    if entry is None:
        return "-"
    return f"{100 * entry['mean']:+.1f} ± {100 * entry['spread']:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def regime_table(data: dict[str, Any]) -> str:
    """Every cell and rho (late-phase SAM last): accuracies, success, SAM's paired gains, top
    eigenvalue, and SGD's early stopping (markdown)."""
    lines = ["| cell | rho | train acc % | test acc % | success % | SAM − full SGD | "
             "SAM − early-stopped SGD | top eigenvalue |", "|---|---|---|---|---|---|---|---|"]
    for cell in data["cells"]:
        es = cell["early_stopping"]
        label = (f"{cell['cell']['label']} (early stopping: epoch {es['epoch']}, "
                 f"{_pm(es)} pts)")
        rows = [*cell["rhos"].items(),
                *((f"late-phase {r} (SAM from epoch {cell['decay_epochs'][-1]})", row)
                  for r, row in cell.get("late_phase", {}).items())]
        for rho, row in rows:
            eig = row.get("top_eigenvalue_mean")
            lines.append(
                f"| {label} | {rho} | {_pct(row.get('train_acc_mean'))} | "
                f"{_pct(row.get('test_acc_mean'))} | {_pct(row.get('success_mean'))} | "
                f"{_pm(row.get('vs_full'))} | {_pm(row.get('vs_early_stopped'))} | "
                f"{'n/a' if eig is None else f'{eig:.3g}'} |")
            label = ""
    return "\n".join(lines)
