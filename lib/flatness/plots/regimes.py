"""Figures of the regime map: one heatmap per metric over training-set size and length, with
a slider over SAM's rho (the map's summary in, a plotly figure out)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from flatness.plots.figures import slider_figure

#: What a heatmap can show: (title, unit scale, whether it depends on rho).
METRICS = {
    "success": ("mean transfer success of the final epoch (%)", 100.0),
    "vs_full": ("SAM − fully trained SGD, paired by seed (points)", 100.0),
    "vs_early_stopped": ("SAM − early-stopped SGD, paired by seed (points)", 100.0),
    "test_acc": ("test accuracy (%)", 100.0),
    "train_acc": ("training accuracy (%)", 100.0),
    "top_eigenvalue": ("top Hessian eigenvalue", 1.0),
}


def _axes(data: dict[str, Any]) -> tuple[list[int], list[str]]:
    sizes = sorted({c["cell"]["train_subset"] for c in data["cells"]})
    rows = sorted({(c["cell"]["width"], c["cell"]["epochs"]) for c in data["cells"]})
    return sizes, [f"{e} epochs, width {w:g}" for w, e in rows]


def _row(cell: dict[str, Any]) -> str:
    return f"{cell['cell']['epochs']} epochs, width {cell['cell']['width']:g}"


def cell_value(cell: dict[str, Any], metric: str, rho: str) -> float | None:
    """A cell's value of ``metric`` at ``rho`` (None where it does not apply: SGD's gains)."""
    row = cell["rhos"].get(rho, {})
    if metric in ("vs_full", "vs_early_stopped"):
        return row[metric]["mean"] if metric in row else None
    return row.get(f"{metric}_mean")


def heatmap_traces(data: dict[str, Any], metric: str, rho: str) -> list[Any]:
    """One heatmap (size x length-and-width) of ``metric`` at ``rho``, values written in."""
    title, factor = METRICS[metric]
    sizes, rows = _axes(data)
    z: list[list[float | None]] = [[None] * len(sizes) for _ in rows]
    for cell in data["cells"]:
        value = cell_value(cell, metric, rho)
        if value is not None:
            z[rows.index(_row(cell))][sizes.index(cell["cell"]["train_subset"])] = factor * value
    text = [["" if v is None else f"{v:.1f}" if factor > 1 else f"{v:.3g}" for v in r]
            for r in z]
    diverging = metric.startswith("vs_")
    return [go.Heatmap(x=[str(s) for s in sizes], y=rows, z=z, text=text,
                       texttemplate="%{text}", colorscale="RdBu" if diverging else "Viridis",
                       zmid=0 if diverging else None, colorbar={"title": title.split(" (")[0]},
                       hovertemplate="%{x} images, %{y}: %{z:.2f}<extra></extra>")]


def regime_heatmap(data: dict[str, Any], metric: str = "vs_full") -> go.Figure:
    """``metric`` over the map, with a slider over SAM's rho (the same colour range at every
    rho, so that moving the slider compares rhos honestly)."""
    if metric not in METRICS:
        from flatness.errors import FlatnessError

        raise FlatnessError(f"unknown metric {metric!r}; choose among: {', '.join(METRICS)}")
    title, _ = METRICS[metric]
    rhos = [r for r in data["rhos"] if not (metric.startswith("vs_") and r == "0")]
    frames = {rho: heatmap_traces(data, metric, rho) for rho in rhos}
    values = [v for ts in frames.values() for row in ts[0].z for v in row if v is not None]
    layout = go.Layout(title=title, xaxis_title="training images", yaxis_title="",
                       height=420)
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
    sizes, rows = _axes(data)
    z: list[list[float | None]] = [[None] * len(sizes) for _ in rows]
    for cell in data["cells"]:
        z[rows.index(_row(cell))][sizes.index(cell["cell"]["train_subset"])] = (
            100 * cell["early_stopping"]["mean"])
    text = [["" if v is None else f"{v:+.1f}" for v in r] for r in z]
    fig = go.Figure(go.Heatmap(x=[str(s) for s in sizes], y=rows, z=z, text=text,
                               texttemplate="%{text}", colorscale="Viridis",
                               colorbar={"title": "points"}))
    fig.update_layout(title="Early stopping's gain for SGD: best checkpoint − final (points)",
                      xaxis_title="training images", height=420)
    return fig


def _pm(entry: dict[str, Any] | None) -> str:
    """A paired gain as ``+1.2 ± 3.4`` points (± 2 std over seeds)."""
    if entry is None:
        return "-"
    return f"{100 * entry['mean']:+.1f} ± {200 * entry['std']:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def regime_table(data: dict[str, Any]) -> str:
    """Every cell and rho: accuracies, success, SAM's paired gains, top eigenvalue, and SGD's
    early stopping (markdown)."""
    lines = ["| cell | rho | train acc % | test acc % | success % | SAM − full SGD | "
             "SAM − early-stopped SGD | top eigenvalue |", "|---|---|---|---|---|---|---|---|"]
    for cell in data["cells"]:
        es = cell["early_stopping"]
        label = (f"{cell['cell']['label']} (early stopping: epoch {es['epoch']}, "
                 f"{_pm(es)} pts)")
        for rho, row in cell["rhos"].items():
            eig = row.get("top_eigenvalue_mean")
            lines.append(
                f"| {label} | {rho} | {_pct(row.get('train_acc_mean'))} | "
                f"{_pct(row.get('test_acc_mean'))} | {_pct(row.get('success_mean'))} | "
                f"{_pm(row.get('vs_full'))} | {_pm(row.get('vs_early_stopped'))} | "
                f"{'n/a' if eig is None else f'{eig:.3g}'} |")
            label = ""
    return "\n".join(lines)
