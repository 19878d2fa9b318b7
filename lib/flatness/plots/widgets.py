"""Live controls (ipywidgets) for readers running a chapter, with a static fallback for the book.

:func:`explore` takes a figure factory and the values of each control (rho, epoch, target...).
It displays ONE output carrying two representations:

- ``application/vnd.jupyter.widget-view+json``: sliders/dropdowns that call the factory in the
  kernel (live Jupyter shows this one);
- ``text/html``: a plotly figure with frames for every value (or combination of values) and a
  slider (or one menu per control), built by :func:`static_figure` (the static book shows this one;
  ``_config.yml`` drops the widget mime type from MyST-NB's HTML render priority).

So the same cell is interactive live and in the static book, with no kernel and no internet.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from flatness.errors import FlatnessError
from flatness.plots.display import figure_html, mimebundle
from flatness.plots.figures import linked_figure, slider_figure


def _check_controls(controls: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not controls:
        raise FlatnessError("explore needs at least one control, e.g. rho=[0.05, 0.1, 0.5]")
    checked = {}
    for name, values in controls.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise FlatnessError(
                f"control {name!r}: give a non-empty list of values, got {values!r}")
        checked[name] = list(values)
    return checked


def static_figure(
    fig_factory: Callable[..., go.Figure], controls: Mapping[str, Sequence[Any]],
    control: str = "slider",
) -> go.Figure:
    """A figure with frames for every combination of control values (the static fallback).

    One control gives a slider (or a dropdown) labelled with its name; several give one menu
    per control, which together pick the frame (:func:`~flatness.plots.figures.linked_figure`).
    """
    checked = _check_controls(controls)
    names = list(checked)
    frames = {combo: fig_factory(**dict(zip(names, combo)))
              for combo in itertools.product(*checked.values())}
    if len(names) == 1:
        return slider_figure({combo[0]: fig for combo, fig in frames.items()}, names[0],
                             control=control)
    return linked_figure(frames, checked)


def _widget(name: str, values: list[Any]) -> Any:
    import ipywidgets as w

    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric and len(values) > 1:
        return w.SelectionSlider(options=values, value=values[0], description=name,
                                 continuous_update=False)
    return w.Dropdown(options=values, value=values[0], description=name)


def live_widget(fig_factory: Callable[..., go.Figure], controls: Mapping[str, Sequence[Any]]):
    """An ipywidgets box: one control per parameter and an output redrawn by the factory."""
    import ipywidgets as w

    checked = _check_controls(controls)
    inputs = {name: _widget(name, values) for name, values in checked.items()}
    out = w.Output()

    def redraw(_change: Any = None) -> None:
        # set the Output widget's state directly rather than capturing a display() inside
        # ``with out:``: headless executors (papermill/nbclient) route captured outputs through
        # per-message hooks and sometimes never see the cell finish (jupyter/nbclient#312)
        fig = fig_factory(**{name: widget.value for name, widget in inputs.items()})
        out.outputs = ({"output_type": "display_data", "data": mimebundle(fig),
                        "metadata": {}},)

    for widget in inputs.values():
        widget.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(inputs.values())), out])


def explore(fig_factory: Callable[..., go.Figure], control: str = "slider",
            **controls: Sequence[Any]) -> None:
    """Show ``fig_factory(**values)`` with a control per keyword (live widgets + static slider).

    Example: ``explore(lambda rho, epoch: landscape(rho, epoch), rho=[0.05, 0.5], epoch=[10, 30])``.
    """
    from IPython.display import display

    fallback = static_figure(fig_factory, controls, control=control)
    bundle = {"text/html": figure_html(fallback),
              "text/plain": f"<explore: {', '.join(controls)}>"}
    try:
        box = live_widget(fig_factory, controls)
        bundle["application/vnd.jupyter.widget-view+json"] = {
            "version_major": 2, "version_minor": 0, "model_id": box.model_id,
        }
    except ImportError:  # no ipywidgets: the static figure is all there is
        pass
    display(bundle, raw=True)
