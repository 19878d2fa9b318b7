"""Figures and tables of chapter 3 (sharpness): its summary in, plotly figures and markdown
out (the summary is :mod:`flatness.study.analysis.sharpness`'s)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.colors as plotly_colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flatness.plots.figures import curve_traces, slider_figure, surface_with_slider
from flatness.study.analysis.sharpness import METRICS
from flatness.study.report import fmt

#: The colour of each panel of the sharpness figure.
_COLORS = {"top_eigenvalue": "#ef553b", "trace": "#636efa", "success": "#ffa15a"}
#: The two interpolations the chapter draws, by the reader's name of each.
INTERPOLATIONS = {"early-stopped → fully trained SGD": "interp/early->final",
                  "fully trained SGD → l-SAM": "interp/sgd->lsam"}
#: What a 1-D slice records at each step along its direction.
SLICE_QUANTITIES = ("train_loss", "test_loss", "train_acc", "test_acc")


def sharpness_figure(data: dict[str, Any]) -> go.Figure:
    """Fig. 5: top eigenvalue, trace and mean success rate against epoch in three stacked
    panels with decays marked; a slider switches between the seed mean (±2 std) and each seed.
    """
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


def _pct(relative: float | None) -> str:
    return "n/a" if relative is None else f"{100 * relative:+.0f} %"


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


def compared_names(data: dict[str, Any], epochs: bool = False) -> dict[str, str]:
    """The flatness claim's three models by their summary key: labels for tables (``epochs``:
    with the early-stopped and final epochs) or short ones for axes."""
    early, final = ((f" (epoch {data['findings']['early_epoch']})", f" (epoch {data['epochs']})")
                    if epochs else ("", ""))
    return {"early": f"early-stopped SGD{early}", "final": f"fully trained SGD{final}",
            "lsam": f"l-SAM (ρ = {data['lsam_rho']:g})"}


def compared_basins_table(data: dict[str, Any]) -> str:
    """Markdown table, one row per seed and one column per compared model: its 1-D curvature
    (mean over the random directions) and its mean 2-D loss rise (the flatness claim's
    numbers)."""
    compared = data["findings"]["compared"]
    names = compared_names(data, epochs=True)
    rows = ["| seed | " + " | ".join(names.values()) + " |", "|---" * (1 + len(names)) + "|"]
    for i, seed in enumerate(compared["seeds"]):
        cells = [f"{fmt(compared['curvature'][m][i])} / {fmt(compared['mean_rise_2d'][m][i])}"
                 for m in names]
        rows.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def direction_curvatures_figure(data: dict[str, Any]) -> go.Figure:
    """The compared models' 1-D curvature along each random direction (dots) and its mean over
    directions (diamonds: the flatness claim's numbers), grouped by seed: how much one
    direction's curvature varies, and so why the claim takes the mean."""
    compared = data["findings"]["compared"]
    names = compared_names(data)
    fig = go.Figure()
    palette = plotly_colors.qualitative.Plotly
    for i, seed in enumerate(compared["seeds"]):
        group, color = f"seed {seed}", palette[i % len(palette)]
        xs, ys, hover = [], [], []
        for model, label in names.items():
            for direction, value in enumerate(compared["curvature_by_direction"][model][i]):
                xs.append(label)
                ys.append(value)
                hover.append(f"{label}, seed {seed}, direction {direction}")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=f"{group}: each direction",
                                 legendgroup=group, offsetgroup=group, text=hover,
                                 hovertemplate="%{text}: %{y:.3f}<extra></extra>",
                                 marker={"size": 7, "opacity": 0.5, "color": color}))
        fig.add_trace(go.Scatter(x=list(names.values()),
                                 y=[compared["curvature"][m][i] for m in names],
                                 mode="markers", name=f"{group}: mean", legendgroup=group,
                                 offsetgroup=group,
                                 hovertemplate=f"{group}, mean: %{{y:.3f}}<extra></extra>",
                                 marker={"size": 13, "symbol": "diamond", "color": color,
                                         "line": {"width": 1, "color": "black"}}))
    fig.update_layout(scattermode="group", height=420, yaxis_title="1-D curvature at 0",
                      title=f"1-D curvature along {compared['directions']} random directions "
                            "(diamonds: means)")
    return fig


def sharpness_scatter(data: dict[str, Any]) -> go.Figure:
    """Mean success against each sharpness metric, one point per measured epoch (coloured by
    epoch), with the Spearman correlation after the first decay in the legend."""
    success_at = dict(zip(data["transfer_epochs"], data["success_mean"]))
    xs = [success_at.get(e) for e in data["sharpness_epochs"]]
    fig = go.Figure()
    for m, symbol in zip(METRICS, ("circle", "square")):
        c = data["findings"]["correlation"][m]
        fig.add_trace(go.Scatter(
            x=data["sharpness"][m]["mean"], y=xs, mode="markers", name=f"{m} (ρ_s after decay "
            f"{fmt(c['after_first_decay'], 2)})",
            text=[f"epoch {e}" for e in data["sharpness_epochs"]],
            marker={"color": data["sharpness_epochs"], "colorscale": "Viridis", "symbol": symbol,
                    "size": 9, "showscale": m == "trace", "colorbar": {"title": "epoch"}}))
    # the legend under the plot: beside it, it covers the colour bar on a narrow page
    fig.update_layout(title="Transferability against sharpness", xaxis_type="log",
                      xaxis_title="sharpness (log scale)", yaxis_title="mean success rate",
                      height=480, legend={"orientation": "h", "yanchor": "top", "y": -0.22})
    return fig


def slices_figure(data: dict[str, Any]) -> go.Figure:
    """Loss along one random direction of early-stopped SGD, fully trained SGD and l-SAM; a
    dropdown picks the train or test loss."""
    early, final = f"sgd@{data['findings']['early_epoch']}", f"sgd@{data['epochs']}"
    lsam = f"sam{data['lsam_rho']:g}"
    frames = {}
    for split in ("train", "test"):
        series = {model_label(n, data): data["landscapes"][f"{n}/1d"][f"{split}_loss"]
                  for n in (early, final, lsam)}
        frames[split] = curve_traces(data["landscapes"][f"{final}/1d"]["alphas"], series)
    fig = slider_figure(frames, "split", control="dropdown")
    fig.update_layout(title="Loss along a random filter-normalised direction",
                      xaxis_title="step along the direction", yaxis_title="cross-entropy",
                      height=420)
    return fig


def epoch_surfaces(data: dict[str, Any]) -> go.Figure:
    """SGD's 2-D loss landscape (train) with a slider over its epochs."""
    names = [f"sgd@{e}" for e in data["landscape_epochs"]]
    grids, alphas, betas = landscape_grids(data, names)
    return surface_with_slider({int(n[4:]): g for n, g in grids.items()}, alphas, betas,
                               slider_label="epoch", title="SGD loss landscape (train) by epoch")


def rho_surfaces(data: dict[str, Any]) -> go.Figure:
    """SAM's 2-D loss landscape (train) with a slider over rho (0: fully trained SGD)."""
    final = f"sgd@{data['epochs']}"
    names = [final] + [f"sam{r:g}" for r in data["sam_rhos"]]
    grids, alphas, betas = landscape_grids(data, names)
    by_rho = {0.0 if n == final else float(n[3:]): g for n, g in grids.items()}
    return surface_with_slider(by_rho, alphas, betas, slider_label="rho",
                               title="Loss landscape (train) of SAM by ρ (0: SGD)")


def interpolation_figure(data: dict[str, Any]) -> go.Figure:
    """Loss along the straight lines between two surrogates (:data:`INTERPOLATIONS`); a
    dropdown picks the train or test loss, dotted lines mark the two models."""
    frames = {}
    for split in ("train", "test"):
        series = {label: data["landscapes"][key][f"{split}_loss"]
                  for label, key in INTERPOLATIONS.items()}
        frames[split] = curve_traces(data["landscapes"]["interp/early->final"]["alphas"], series)
    fig = slider_figure(frames, "split", control="dropdown")
    fig.add_vline(x=0, line={"dash": "dot", "color": "grey"})
    fig.add_vline(x=1, line={"dash": "dot", "color": "grey"})
    fig.update_layout(title="Loss along the straight line between two surrogates",
                      xaxis_title="α", yaxis_title="cross-entropy", height=420)
    return fig


def barrier_markdown(data: dict[str, Any]) -> str:
    """The barrier of each interpolation (largest excess over the straight line, train loss)."""
    barriers = data["findings"]["barriers"]
    return "Barrier (largest excess over the straight line, train loss): " + "; ".join(
        f"{label}: {fmt(barriers[key.split('/', 1)[1]])}" for label, key in INTERPOLATIONS.items())


def landscape_models(data: dict[str, Any]) -> list[str]:
    """The models with a 1-D slice, in the summary's order."""
    return [k.rsplit("/", 1)[0] for k in data["landscapes"] if k.endswith("/1d")]


def one_slice(data: dict[str, Any], model: str, quantity: str) -> go.Figure:
    """One model's 1-D slice: ``quantity`` (:data:`SLICE_QUANTITIES`) along its direction."""
    entry = data["landscapes"][f"{model}/1d"]
    fig = go.Figure(curve_traces(entry["alphas"], {model_label(model, data): entry[quantity]}))
    fig.update_layout(xaxis_title="step along the direction", yaxis_title=quantity)
    return fig

