"""Building the book: execute chapter notebooks with papermill, then Jupyter Book 1 to HTML.

- :mod:`flatness.book.toc`: the chapters, read from ``_toc.yml`` (the single list of chapters).
- :mod:`flatness.book.execute`: papermill execution with the current interpreter's kernel.
- :mod:`flatness.book.build`: the whole build (``python -m flatness book``) and its summary.
- :mod:`flatness.book.reproducibility`: the reproducibility page, generated from ``results/``.
- :mod:`flatness.book.sphinx_plotly`: a Sphinx extension serving plotly.js from ``_static``.
"""

from flatness.book.build import BookReport, build_book, build_html
from flatness.book.execute import ChapterRun, execute_chapter
from flatness.book.toc import Chapter, read_chapters

__all__ = [
    "BookReport", "Chapter", "ChapterRun", "build_book", "build_html", "execute_chapter",
    "read_chapters",
]
