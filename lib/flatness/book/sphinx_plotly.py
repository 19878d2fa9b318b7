"""Sphinx extension: serve plotly.js from the book's own ``_static`` folder (no CDN).

Figures shown with :func:`flatness.plots.show` contain only a div and a ``Plotly.newPlot``
call; this extension adds ``<script src="_static/plotly.min.js">`` to every page's head and
copies that file from the *installed* plotly package, so the JavaScript always matches the
Python library that produced the figures and the book works offline. Listed in
``_config.yml`` under ``sphinx.extra_extensions``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

FILENAME = "plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def plotly_js_path() -> Path:
    """``plotly.min.js`` shipped inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall plotly")
    return path


def copy_plotly_js(outdir: Path) -> Path:
    """Copy plotly.min.js into ``outdir/_static`` unless an identical copy is there."""
    source = plotly_js_path()
    target = Path(outdir) / "_static" / FILENAME
    if not (target.is_file() and target.stat().st_size == source.stat().st_size
            and target.stat().st_mtime >= source.stat().st_mtime):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return target


def _on_build_finished(app: Any, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        copy_plotly_js(Path(app.outdir))


class _PlotlyMimeFilter(logging.Filter):
    """Drop MyST-NB's "unknown mime type" warning for plotly's own mime type only.

    Figures from :mod:`flatness.plots` carry ``text/html`` next to the plotly mime type (for
    live Jupyter); MyST-NB renders the HTML and would still warn once per figure about the
    other representation. Any other unknown mime type still warns.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("unknown output mime type" in message and PLOTLY_MIME in message)


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any],
                    doctree: Any) -> None:
    """Drop repeated identical ``<script>`` entries (sphinx-thebe adds its inline config twice
    on notebook pages, which is a JavaScript error: ``const THEBE_JS_URL`` declared twice)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted((k, str(v)) for k, v in
                                         getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    for handler in logging.getLogger("sphinx").handlers:
        if not any(isinstance(f, _PlotlyMimeFilter) for f in handler.filters):
            handler.addFilter(_PlotlyMimeFilter())
    # priority 100 loads it before anything else (e.g. require.js, which would make plotly's
    # UMD bundle register as an AMD module instead of setting window.Plotly)
    app.add_js_file(FILENAME, priority=100)
    app.connect("build-finished", _on_build_finished)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
