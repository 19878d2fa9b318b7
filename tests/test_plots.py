"""Structure of the figure builders and of the offline HTML/mime output."""

from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from flatness.errors import FlatnessError
from flatness.plots import (
    bar_per_target,
    curves_with_band,
    figure_html,
    mimebundle,
    slider_figure,
    static_figure,
    surface_with_slider,
)


def test_curves_with_band_has_mean_and_band_per_series() -> None:
    x = np.arange(5)
    mean, std = np.linspace(10, 50, 5), np.full(5, 2.0)
    fig = curves_with_band(x, {"sgd": (mean, std), "sam": mean * 2}, decays=[2, 4])
    assert [t.name for t in fig.data] == ["sgd", "sgd ±2 std", "sam"]
    band = np.asarray(fig.data[1].y)
    np.testing.assert_allclose(band[:5], mean + 4.0)
    np.testing.assert_allclose(band[5:], (mean - 4.0)[::-1])
    assert [s.x0 for s in fig.layout.shapes] == [2, 4]
    with pytest.raises(FlatnessError, match="expected 5 values"):
        curves_with_band(x, {"bad": np.ones(4)})


def test_slider_figure_frames_steps_and_shared_range() -> None:
    frames = {r: [go.Scatter(x=[0, 1], y=[0, 10 * r])] for r in (0.1, 0.5, 2.0)}
    fig = slider_figure(frames, "rho", active=1)
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0.1", "0.5", "2.0"]
    assert list(fig.layout.sliders[0].steps[2].args[0]) == ["rho=2.0"]
    assert list(fig.data[0].y) == [0, 5.0]  # the active frame is shown first
    low, high = fig.layout.yaxis.range
    assert low < 0 and high > 20
    menu = slider_figure(frames, "rho", control="dropdown")
    assert len(menu.layout.updatemenus[0].buttons) == 3 and not menu.layout.sliders
    with pytest.raises(FlatnessError, match="same traces"):
        slider_figure({1: [go.Scatter()], 2: [go.Bar()]})


def test_surface_with_slider_slices_at_zero() -> None:
    x, y = np.linspace(-1, 1, 4), np.linspace(-1, 1, 5)
    grids = {e: np.add.outer(y**2, x**2) * e for e in (1, 2)}
    for kind in ("contour", "surface"):
        fig = surface_with_slider(grids, x, y, kind=kind)
        assert len(fig.frames) == 2 and all(len(f.data) == 2 for f in fig.frames)
        assert fig.frames[1].data[0].type == kind
        np.testing.assert_allclose(fig.frames[1].data[1].y, grids[2][2])  # row y = 0
    with pytest.raises(FlatnessError, match="shape"):
        surface_with_slider({1: np.zeros((4, 5))}, x, y)


def test_bar_per_target_mean_column_and_error_bars() -> None:
    fig = bar_per_target({"sgd": {"vgg": (40.0, 2.0), "resnet": 60.0}, "sam": {"vgg": 70.0}},
                         n_std=2)
    assert list(fig.data[0].x) == ["vgg", "resnet", "mean"]
    assert list(fig.data[0].y) == [40.0, 60.0, 50.0]
    assert fig.data[0].error_y.array[0] == 4.0
    assert np.isnan(fig.data[1].y[1]) and fig.data[1].y[2] == 70.0


def test_static_figure_covers_every_combination() -> None:
    def factory(rho, epoch):
        return curves_with_band([0, 1], {"a": [rho, epoch]})

    fig = static_figure(factory, {"rho": [0.1, 0.2], "epoch": [1, 2, 3]})
    assert len(fig.frames) == 6 and not fig.layout.sliders and not fig.layout.updatemenus
    last = next(f for f in fig.frames if f.name == "1-2")  # rho index 1, epoch index 2
    assert list(last.data[0].y) == [0.2, 3]
    controls = fig.layout.meta["flatness_controls"]
    assert [(c["name"], c["labels"]) for c in controls] == [
        ("rho", ["0.1", "0.2"]), ("epoch", ["1", "2", "3"])]


def test_several_controls_get_one_menu_each_in_the_static_html() -> None:
    def factory(schedule, target):
        return curves_with_band([0, 1], {"a": [len(schedule), len(target)]})

    schedules, targets = ["constant", "standard", "single@5"], ["mean", "vgg", "<b>"]
    fig = static_figure(factory, {"schedule": schedules, "target": targets})
    page = figure_html(fig, div_id="f1")
    menus = re.findall(r"<select[^>]*>(.*?)</select>", page)
    assert len(menus) == 2  # one per choice, not one of the 9 combinations
    assert [len(re.findall("<option", m)) for m in menus] == [3, 3]
    assert "&lt;b&gt;" in menus[1] and 'id="f1-controls"' in page
    assert 'join("-")' in page and "Plotly.animate" in page
    one = static_figure(lambda target: factory("constant", target), {"target": targets})
    assert "<select" not in figure_html(one)  # a single choice keeps plotly's own slider
    with pytest.raises(FlatnessError, match="non-empty list"):
        static_figure(factory, {"rho": "0.1"})


def test_figure_html_is_offline_and_round_trips() -> None:
    fig = slider_figure({r: [go.Scatter(x=[0, 1], y=[r, r], name="</script>")] for r in (1, 2)})
    html = figure_html(fig, div_id="f1")
    assert "<script src" not in html and "cdn" not in html.lower()
    assert html.count("</script>") == 1  # the trace name cannot close the script early
    payload = re.search(r"var figure = (\{.*\});\n", html).group(1)
    doc = json.loads(payload)
    assert len(doc["frames"]) == 2 and doc["data"][0]["y"] == [1, 1]
    assert 'id="f1"' in html and "Plotly.newPlot" in html
    bundle = mimebundle(fig)
    assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html", "text/plain"}
    assert len(bundle["application/vnd.plotly.v1+json"]["frames"]) == 2


def test_live_widget_redraws_its_output_from_the_controls() -> None:
    from flatness.plots.widgets import live_widget

    def factory(rho: float) -> go.Figure:
        return go.Figure(go.Scatter(x=[0, 1], y=[rho, rho]))

    box = live_widget(factory, {"rho": [0.05, 0.5]})
    (slider,), out = box.children[0].children, box.children[1]
    first = out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"]
    slider.value = 0.5
    (drawn,) = out.outputs
    assert first == [0.05, 0.05]
    assert drawn["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"] == [0.5, 0.5]


def test_explore_cells_finish_under_papermill(tmp_path) -> None:
    """Widgets captured with ``with out: display(...)`` hung nbclient now and then (about
    one run in three here, jupyter/nbclient#312); three runs under a cell timeout."""
    import nbformat
    import papermill

    from flatness.book.execute import CurrentPythonKernelManager

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import plotly.graph_objects as go\nfrom flatness.plots import explore\n"
        "explore(lambda a: go.Figure(go.Scatter(x=[1, 2], y=[a, a])), a=[1, 2])")]
    source = tmp_path / "explore.ipynb"
    nbformat.write(nb, source)
    for i in range(3):
        papermill.execute_notebook(str(source), str(tmp_path / f"out{i}.ipynb"),
                                   kernel_name="python3", progress_bar=False,
                                   kernel_manager_class=CurrentPythonKernelManager,
                                   execution_timeout=60)
        executed = nbformat.read(tmp_path / f"out{i}.ipynb", 4)
        bundle = executed.cells[0].outputs[0]["data"]
        assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
