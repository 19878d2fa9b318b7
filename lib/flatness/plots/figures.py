"""Generic interactive figure builders: arrays in, ``go.Figure`` out.

They know nothing about training or attacks, so chapters stay short and every figure of the
book looks alike: mean curves with ±k std bands and learning-rate decays marked, a slider (or
dropdown) over frames, loss landscapes with a slider, grouped bars per target.
Sliders and dropdowns use plotly frames, so they work in the static book with no kernel.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flatness.errors import FlatnessError

#: Qualitative palette (plotly's default, fixed so a series keeps its colour across figures).
PALETTE = (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
    "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
)

Series = Any  # an array of means, or a (mean, std) pair where std may be None


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _mean_std(name: str, series: Series, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(series, tuple) and len(series) == 2:
        mean, std = series
    else:
        mean, std = series, None
    mean = np.asarray(mean, dtype=float)
    std = None if std is None else np.asarray(std, dtype=float)
    if mean.shape != (n,) or (std is not None and std.shape != (n,)):
        raise FlatnessError(
            f"series {name!r}: expected {n} values (one per x), got mean {mean.shape}"
            + ("" if std is None else f" and std {std.shape}")
        )
    return mean, std


def curve_traces(
    x: Sequence[float], series: Mapping[str, Series], *, n_std: float = 2.0,
    colors: Mapping[str, str] | None = None,
) -> list[go.Scatter]:
    """Traces for mean curves, each followed by its ±``n_std`` std band (if a std is given)."""
    x = np.asarray(x, dtype=float)
    traces: list[go.Scatter] = []
    for i, (name, values) in enumerate(series.items()):
        mean, std = _mean_std(name, values, len(x))
        color = (colors or {}).get(name, PALETTE[i % len(PALETTE)])
        traces.append(go.Scatter(
            x=x, y=mean, name=name, legendgroup=name, mode="lines+markers",
            line={"color": color}, marker={"size": 4},
        ))
        if std is not None:
            upper, lower = mean + n_std * std, mean - n_std * std
            traces.append(go.Scatter(
                x=np.concatenate([x, x[::-1]]), y=np.concatenate([upper, lower[::-1]]),
                name=f"{name} ±{n_std:g} std", legendgroup=name, showlegend=False,
                fill="toself", fillcolor=_rgba(color, 0.2), line={"width": 0},
                hoverinfo="skip", mode="lines",
            ))
    return traces


def _mark_decays(fig: go.Figure, decays: Sequence[float], **subplot: Any) -> None:
    for epoch in decays:
        fig.add_vline(x=epoch, line={"dash": "dot", "color": "grey", "width": 1}, **subplot)


def curves_with_band(
    x: Sequence[float], series: Mapping[str, Series], *, n_std: float = 2.0,
    decays: Sequence[float] = (), title: str | None = None, xaxis_title: str = "epoch",
    yaxis_title: str = "", colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Mean curves against ``x`` with ±``n_std`` std bands and dotted lines at LR decays.

    ``series`` maps a name to its means, or to a ``(mean, std)`` pair (std over seeds).
    """
    fig = go.Figure(curve_traces(x, series, n_std=n_std, colors=colors))
    _mark_decays(fig, decays)
    fig.update_layout(title=title, xaxis_title=xaxis_title, yaxis_title=yaxis_title,
                      hovermode="x unified")
    return fig


def _frame_traces(value: Any, content: go.Figure | Sequence[Any]) -> list[Any]:
    if isinstance(content, go.Figure):
        return list(content.data)
    if isinstance(content, Sequence) and not isinstance(content, str):
        return list(content)
    raise FlatnessError(f"frame {value!r}: expected a go.Figure or a list of traces")


def _y_range(frames: Sequence[Sequence[Any]]) -> list[float] | None:
    values = []
    for traces in frames:
        for trace in traces:
            y = getattr(trace, "y", None)
            if trace.type in {"scatter", "bar"} and y is not None:
                arr = np.asarray(y, dtype=float)
                values.append(arr[np.isfinite(arr)])
    if not values or not sum(v.size for v in values):
        return None
    low, high = float(min(v.min() for v in values if v.size)), float(
        max(v.max() for v in values if v.size))
    pad = 0.05 * (high - low or 1.0)
    return [low - pad, high + pad]


#: How a frame is shown: at once, redrawn, with no transition.
ANIMATE = {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
           "transition": {"duration": 0}}
#: Where :func:`linked_figure` records its controls (read by the HTML of the static book).
CONTROLS_META = "flatness_controls"


def slider_figure(
    frames: Mapping[Any, go.Figure | Sequence[Any]], slider_label: str = "rho", *,
    active: int = 0, control: str = "slider", shared_yrange: bool = True,
    layout: go.Layout | Mapping[str, Any] | None = None,
) -> go.Figure:
    """One figure per value of a parameter, switched by a slider (or a dropdown menu).

    ``frames`` maps each value to a figure or a list of traces; all must have the same traces
    in the same order. The layout comes from ``layout``, else the first figure. With
    ``shared_yrange`` the y axis is fixed over all frames so that moving the slider compares
    values honestly.
    """
    if control not in {"slider", "dropdown"}:
        raise FlatnessError(f"control must be 'slider' or 'dropdown', got {control!r}")
    values = list(frames)
    names = [f"{slider_label}={v}" for v in values]
    fig, traces = _framed_figure(frames, names, active, layout, "slider_figure")
    if control == "slider":
        fig.update_layout(sliders=[{
            "active": active,
            "currentvalue": {"prefix": f"{slider_label} = "},
            "pad": {"t": 40},
            "steps": [
                {"label": str(v), "method": "animate", "args": [[name], ANIMATE]}
                for v, name in zip(values, names)
            ],
        }])
    else:
        fig.update_layout(updatemenus=[{
            "type": "dropdown", "active": active, "x": 1.0, "xanchor": "right", "y": 1.15,
            "buttons": [
                {"label": f"{slider_label} = {v}", "method": "animate", "args": [[name], ANIMATE]}
                for v, name in zip(values, names)
            ],
        }])
    if shared_yrange and (yrange := _y_range(traces)) is not None:
        fig.update_yaxes(range=yrange)
    return fig


def _framed_figure(frames: Mapping[Any, go.Figure | Sequence[Any]], names: Sequence[str],
                   active: int, layout: go.Layout | Mapping[str, Any] | None, what: str
                   ) -> tuple[go.Figure, list[list[Any]]]:
    """A figure showing frame ``active`` and holding every frame under its name."""
    if not frames:
        raise FlatnessError(f"{what} needs at least one frame")
    values = list(frames)
    if not 0 <= active < len(values):
        raise FlatnessError(f"active={active} is outside the {len(values)} frames")
    traces = [_frame_traces(v, frames[v]) for v in values]
    kinds = [tuple(t.type for t in ts) for ts in traces]
    for value, kind in zip(values, kinds):
        if kind != kinds[0]:
            raise FlatnessError(
                f"{what}: every frame needs the same traces in the same order; "
                f"{values[0]!r} has {list(kinds[0])}, {value!r} has {list(kind)}"
            )
    first = frames[values[0]]
    base_layout = layout if layout is not None else (
        first.layout if isinstance(first, go.Figure) else go.Layout())
    fig = go.Figure(data=traces[active], layout=base_layout)
    fig.frames = [go.Frame(data=ts, name=name, traces=list(range(len(ts))))
                  for ts, name in zip(traces, names)]
    return fig, traces


def frame_name(indices: Sequence[int]) -> str:
    """The name of the frame of one combination of control values (their indices)."""
    return "-".join(map(str, indices))


def linked_figure(
    frames: Mapping[tuple[Any, ...], go.Figure | Sequence[Any]],
    controls: Mapping[str, Sequence[Any]], *, shared_yrange: bool = True,
    layout: go.Layout | Mapping[str, Any] | None = None,
) -> go.Figure:
    """One figure per combination of several choices, with one control per choice.

    ``frames`` maps each combination of values (a tuple in the order of ``controls``) to a
    figure or a list of traces; every combination must be there. The controls are recorded in
    the layout's ``meta`` and drawn by :func:`flatness.plots.display.figure_html` as one menu
    per choice, which together pick the frame (no menu of every combination).
    """
    options = {name: list(values) for name, values in controls.items()}
    combos = list(itertools.product(*(range(len(v)) for v in options.values())))
    keyed = {}
    for combo in combos:
        key = tuple(values[i] for values, i in zip(options.values(), combo))
        if key not in frames:
            raise FlatnessError(f"linked_figure: no frame for {dict(zip(options, key))}")
        keyed[frame_name(combo)] = frames[key]
    fig, traces = _framed_figure(keyed, list(keyed), 0, layout, "linked_figure")
    meta = [{"name": name, "labels": [str(v) for v in values]} for name, values in options.items()]
    fig.update_layout(meta={CONTROLS_META: meta})
    if shared_yrange and (yrange := _y_range(traces)) is not None:
        fig.update_yaxes(range=yrange)
    return fig


def _slice_index(y: np.ndarray) -> int:
    """The row of the grid closest to ``y = 0`` (the trained weights, for a landscape)."""
    return int(np.argmin(np.abs(y)))


#: Gap between the landscape panel and its slice (room for the colour bar).
SPACING = 0.24


def surface_with_slider(
    grids: Mapping[Any, Any], x: Sequence[float], y: Sequence[float], *,
    slider_label: str = "epoch", kind: str = "contour", zaxis_title: str = "loss",
    log_z: bool = False, title: str | None = None,
) -> go.Figure:
    """2-D loss landscapes (one grid per slider value) beside their 1-D slice at ``y = 0``.

    ``grids`` maps a value (epoch, rho, ...) to a ``len(y) x len(x)`` array of losses along
    two directions ``x`` and ``y``. ``kind`` is ``"contour"`` (fast, readable) or
    ``"surface"`` (3-D). The colour and z ranges are shared over all values.
    """
    if kind not in {"contour", "surface"}:
        raise FlatnessError(f"kind must be 'contour' or 'surface', got {kind!r}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    arrays = {}
    for value, grid in grids.items():
        z = np.asarray(grid, dtype=float)
        if z.shape != (len(y), len(x)):
            raise FlatnessError(
                f"grid {slider_label}={value}: shape {z.shape}, expected (len(y), len(x)) = "
                f"({len(y)}, {len(x)})"
            )
        arrays[value] = np.log10(np.maximum(z, 1e-12)) if log_z else z
    if not arrays:
        raise FlatnessError("surface_with_slider needs at least one grid")
    finite = np.concatenate([z[np.isfinite(z)] for z in arrays.values()])
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    row = _slice_index(y)
    z_label = f"log10 {zaxis_title}" if log_z else zaxis_title

    def traces(z: np.ndarray) -> list[Any]:
        # the colour bar sits in the gap between the two panels, clear of the slice's axis
        colorbar = {"title": z_label, "x": (1 - SPACING) * 0.55 + 0.01, "xanchor": "left",
                    "thickness": 12, "len": 0.9}
        common = {"x": x, "y": y, "z": z, "colorscale": "Viridis", "colorbar": colorbar}
        if kind == "surface":
            main = go.Surface(cmin=zmin, cmax=zmax, **common)
        else:
            main = go.Contour(zmin=zmin, zmax=zmax, ncontours=20, **common)
        return [main, go.Scatter(x=x, y=z[row], mode="lines+markers", name=f"slice y={y[row]:g}",
                                 showlegend=False)]

    specs = [[{"type": "scene" if kind == "surface" else "xy"}, {"type": "xy"}]]
    base = make_subplots(rows=1, cols=2, specs=specs, column_widths=[0.55, 0.45],
                         horizontal_spacing=SPACING,
                         subplot_titles=("landscape", f"slice at y = {y[row]:g}"))
    pad = 0.05 * (zmax - zmin or 1.0)
    base.update_yaxes(title_text=z_label, range=[zmin - pad, zmax + pad], row=1, col=2)
    base.update_xaxes(title_text="x (direction 1)", row=1, col=2)
    if kind == "surface":
        base.update_scenes(zaxis={"range": [zmin, zmax], "title": z_label},
                           xaxis_title="x", yaxis_title="y")
    else:
        base.update_xaxes(title_text="x (direction 1)", row=1, col=1)
        base.update_yaxes(title_text="y (direction 2)", row=1, col=1)
    base.update_layout(title=title, height=520)
    frames = {value: traces(z) for value, z in arrays.items()}
    fig = slider_figure(frames, slider_label, layout=base.layout, shared_yrange=False)
    # make_subplots assigns axes to traces; slider_figure rebuilt them, so re-assign
    for trace_list in [fig.data, *(frame.data for frame in fig.frames)]:
        if kind == "contour":
            trace_list[0].update(xaxis="x", yaxis="y")
        else:
            trace_list[0].update(scene="scene")
        trace_list[1].update(xaxis="x2", yaxis="y2")
    return fig


def bar_per_target(
    values: Mapping[str, Mapping[str, Series]], *, n_std: float = 1.0, mean_column: bool = True,
    title: str | None = None, yaxis_title: str = "success rate (%)",
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Grouped bars: one group per target, one bar per surrogate/method, error bars ±k std.

    ``values[method][target]`` is a mean or a ``(mean, std)`` pair. With ``mean_column`` a
    last group ``"mean"`` averages each method over the targets (std of that mean not shown).
    """
    targets: list[str] = []
    for per_target in values.values():
        targets += [t for t in per_target if t not in targets]
    fig = go.Figure()
    for i, (method, per_target) in enumerate(values.items()):
        means, stds = [], []
        for target in targets:
            if target not in per_target:
                means.append(np.nan)
                stds.append(np.nan)
                continue
            entry = per_target[target]
            mean, std = entry if isinstance(entry, tuple) else (entry, None)
            means.append(float(mean))
            stds.append(np.nan if std is None else float(std))
        x = list(targets)
        if mean_column:
            x.append("mean")
            means.append(float(np.nanmean(means)) if np.isfinite(means).any() else np.nan)
            stds.append(np.nan)
        has_std = np.isfinite(stds).any()
        fig.add_trace(go.Bar(
            x=x, y=means, name=method,
            marker_color=(colors or {}).get(method, PALETTE[i % len(PALETTE)]),
            error_y={"type": "data", "array": [n_std * s for s in stds], "visible": True}
            if has_std else None,
        ))
    fig.update_layout(barmode="group", title=title, yaxis_title=yaxis_title,
                      xaxis_title="target")
    return fig
