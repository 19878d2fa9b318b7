"""Show a plotly figure so that it works both in a live notebook and in the static book.

Plotly 6+ emits only the ``application/vnd.plotly.v1+json`` mime type, which MyST-NB does not
render (executablebooks/MyST-NB#667): the figure is blank in the book. :func:`show` emits one
output with two representations: the plotly mime bundle (live Jupyter, VS Code) and a
``text/html`` div that calls ``Plotly.newPlot`` *without* embedding plotly.js. The book loads
plotly.js once per page from its own ``_static`` folder (see :mod:`flatness.book.sphinx_plotly`),
so figures render with no kernel and no internet, and pages stay small. A figure over several
choices (:func:`flatness.plots.figures.linked_figure`) gets one menu per choice above it.
"""

from __future__ import annotations

import html
import json
import uuid
from typing import Any

import plotly.graph_objects as go
from plotly.io.base_renderers import MimetypeRenderer

from flatness.plots.figures import ANIMATE, CONTROLS_META

#: Plotly's config for every figure: responsive width, no "edit in chart studio" link.
FIGURE_CONFIG: dict[str, Any] = {"responsive": True, "displaylogo": False}
#: Height (pixels) of a figure whose layout sets none.
DEFAULT_HEIGHT = 480

_SCRIPT = """<script type="text/javascript">
(function () {{
  var figure = {figure};
  var draw = function () {{
    var gd = document.getElementById("{div_id}");
    if (!gd) {{ return; }}
    Plotly.newPlot(gd, figure.data, figure.layout, figure.config).then(function () {{
      if (figure.frames && figure.frames.length) {{ return Plotly.addFrames(gd, figure.frames); }}
    }}).then(function () {{ link(gd); }});
  }};
  // one menu per choice: together they name the frame to show ("0-2": first value, third value)
  var link = function (gd) {{
    var box = document.getElementById("{div_id}-controls");
    if (!box) {{ return; }}
    var menus = Array.prototype.slice.call(box.querySelectorAll("select"));
    menus.forEach(function (menu) {{
      menu.addEventListener("change", function () {{
        var name = menus.map(function (m) {{ return m.value; }}).join("-");
        Plotly.animate(gd, [name], {animate});
      }});
    }});
  }};
  if (window.Plotly) {{ draw(); }}
  else {{ window.addEventListener("load", function () {{
    if (window.Plotly) {{ draw(); }}
    else {{ console.error("flatness: plotly.js is not loaded on this page"); }}
  }}); }}
}})();
</script>"""


def figure_html(fig: go.Figure, div_id: str | None = None) -> str:
    """The figure as an HTML fragment: a ``div`` and a script drawing it with a page-level Plotly.

    The script uses ``window.Plotly`` (the page's ``<head>`` provides it; the script falls back
    to the page's ``load`` event), never a CDN, and embeds the figure's data, layout and frames.
    """
    import plotly.io as pio

    div_id = div_id or f"flatness-fig-{uuid.uuid4().hex[:12]}"
    height = fig.layout.height or DEFAULT_HEIGHT
    as_json = fig.to_plotly_json()
    figure = {
        "data": as_json["data"],
        "layout": as_json["layout"],
        "frames": [frame.to_plotly_json() for frame in (fig.frames or ())],
        "config": FIGURE_CONFIG,
    }
    # "</" inside a <script> element would end it early
    figure_json = pio.json.to_json_plotly(figure).replace("</", "<\\/")
    return (
        controls_html(fig, div_id)
        + f'<div id="{div_id}" class="plotly-graph-div flatness-figure" '
        f'style="height:{height}px; width:100%;"></div>\n'
        + _SCRIPT.format(figure=figure_json, div_id=div_id, animate=json.dumps(ANIMATE))
    )


def controls_html(fig: go.Figure, div_id: str) -> str:
    """One labelled ``<select>`` per choice of a linked figure (empty for other figures)."""
    meta = fig.layout.meta
    controls = meta.get(CONTROLS_META) if isinstance(meta, dict) else None
    if not controls:
        return ""
    menus = []
    for control in controls:
        options = "".join(f'<option value="{i}">{html.escape(label)}</option>'
                          for i, label in enumerate(control["labels"]))
        menus.append(f'<label>{html.escape(control["name"])} <select '
                     f'aria-label="{html.escape(control["name"])}">{options}</select></label>')
    return (f'<div id="{div_id}-controls" class="flatness-controls">' + " ".join(menus)
            + "</div>\n")


def mimebundle(fig: go.Figure) -> dict[str, Any]:
    """The display bundle: plotly's own mime type for live frontends, HTML for the static book."""
    bundle: dict[str, Any] = {
        "application/vnd.plotly.v1+json": fig.to_plotly_json() | {"config": FIGURE_CONFIG},
        "text/html": figure_html(fig),
        "text/plain": f"<plotly figure: {len(fig.data)} traces, {len(fig.frames or ())} frames>",
    }
    return _jsonable(bundle)


def show(fig: go.Figure) -> None:
    """Display ``fig`` in a notebook so it renders live *and* in the static Jupyter Book."""
    from IPython.display import display

    display(mimebundle(fig), raw=True)


class FlatnessRenderer(MimetypeRenderer):
    """A plotly renderer emitting :func:`mimebundle`, so ``fig.show()`` and a bare ``fig``
    also render offline in the book (registered as ``"flatness"`` by :func:`use_renderer`)."""

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        return mimebundle(go.Figure(fig_dict))

    def activate(self) -> None:
        """Nothing to load: plotly.js comes from the page (book) or the frontend (Jupyter)."""


def use_renderer() -> None:
    """Make ``"flatness"`` plotly's default renderer when running inside an IPython kernel."""
    import plotly.io as pio

    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return  # a script or a terminal IPython: keep plotly's own default (browser)
    pio.renderers["flatness"] = FlatnessRenderer()
    pio.renderers.default = "flatness"


def _jsonable(obj: Any) -> Any:
    """Plotly's JSON encoder handles numpy arrays, dates and NaN; round-trip through it."""
    import plotly.io as pio

    return json.loads(pio.json.to_json_plotly(obj))
