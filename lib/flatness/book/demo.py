"""A tiny self-contained book (two demo chapters) for testing the build machinery end to end.

It copies the real ``_config.yml`` and static pages, so a test of the demo book tests the
book's real configuration, and writes generated chapter notebooks that use
:mod:`flatness.plots` and :func:`flatness.notebook.check_parameters` exactly like the real
chapters do. Used by ``tests/test_book.py`` and ``tests/test_browser.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from flatness.paths import repo_root

PARAMETERS = '''scale = "smoke"
rho = 0.1
fail = False'''

FIGURE = '''import numpy as np
from flatness.plots import curves_with_band, show, slider_figure

epochs = np.arange(1, 11)
frames = {
    r: curves_with_band(epochs, {"success rate": (50 + 30 * np.exp(-r * epochs), np.ones(10))},
                        decays=[4, 7], yaxis_title="success rate (%)")
    for r in (0.05, p["rho"], 0.5)
}
show(slider_figure(frames, "rho"))'''

EXPLORE = '''from flatness.plots import curves_with_band, explore

def loss_curve(epoch, rate):
    x = np.arange(10)
    return curves_with_band(x, {"loss": np.exp(-rate * np.minimum(x, epoch))})


explore(loss_curve, epoch=[3, 6, 9], rate=[0.5, 1.0])'''


def demo_notebook(title: str) -> nbformat.NotebookNode:
    """An output-free chapter: parameters, their check, a slider figure and an explore cell."""
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {title}\n\nA generated chapter testing the book machinery."),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell("from flatness.notebook import check_parameters\n\n"
                      "p = check_parameters(globals(), scale=scale, rho=rho, fail=fail)\n"
                      "if fail:\n    raise RuntimeError('demo chapter asked to fail')"),
        new_markdown_cell("## A figure with a slider"),
        new_code_cell(FIGURE),
        new_markdown_cell("## Live controls (one menu per control in the static book)"),
        new_code_cell(EXPLORE),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


TOC = """format: jb-book
root: book/intro
parts:
  - caption: Chapters
    chapters:
{chapters}
  - caption: Appendix
    chapters:
      - file: book/reproducibility
"""


def make_demo_book(root: Path, chapters: tuple[str, ...] = ("01_demo", "02_demo")) -> Path:
    """Write a demo book under ``root``: real config and intro, generated toc and notebooks."""
    root = Path(root)
    source = repo_root()
    (root / "book").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "_config.yml", root / "_config.yml")
    shutil.copy(source / "book" / "intro.md", root / "book" / "intro.md")
    shutil.copytree(source / "book" / "_static", root / "book" / "_static", dirs_exist_ok=True)
    (root / "_toc.yml").write_text(TOC.format(
        chapters="\n".join(f"      - file: book/chapters/{name}" for name in chapters)))
    (root / "notebooks").mkdir(exist_ok=True)
    for i, name in enumerate(chapters, 1):
        nbformat.write(demo_notebook(f"Demo chapter {i}"), root / "notebooks" / f"{name}.ipynb")
    return root


def demo_html(base: Path, parameters: dict | None = None) -> Path:
    """Build the demo book once under ``base`` (reused if already built); return its html dir."""
    from flatness.book.build import build_book

    html = Path(base) / "_build" / "html"
    if not (html / "book" / "chapters" / "02_demo.html").is_file():
        make_demo_book(base)
        report = build_book(base, parameters=parameters or {"rho": 0.2}, echo=lambda *a, **k: None)
        if not report.ok:
            raise RuntimeError(f"demo book build failed:\n{report.summary()}")
    return html
