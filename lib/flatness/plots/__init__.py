"""Interactive plotly figures for the book: builders (data in, ``go.Figure`` out) and display.

The generic builders are here (:mod:`~flatness.plots.figures`, :mod:`~flatness.plots.widgets`);
each chapter's figures and markdown tables, from its summary, are in ``plots/<chapter>.py``.

Use :func:`show` (not ``fig.show()``) in notebooks: it renders live and in the static book,
where plotly.js is served from the book's own ``_static`` folder (works offline).
"""

from flatness.plots.display import FIGURE_CONFIG, figure_html, mimebundle, show, use_renderer
from flatness.plots.figures import (
    PALETTE,
    bar_per_target,
    curve_traces,
    curves_with_band,
    linked_figure,
    slider_figure,
    surface_with_slider,
)
from flatness.plots.widgets import explore, static_figure

use_renderer()  # in a notebook, fig.show() and a bare `fig` render offline in the book too

__all__ = [
    "FIGURE_CONFIG",
    "PALETTE",
    "bar_per_target",
    "curve_traces",
    "curves_with_band",
    "explore",
    "figure_html",
    "linked_figure",
    "mimebundle",
    "show",
    "slider_figure",
    "static_figure",
    "surface_with_slider",
    "use_renderer",
]
