"""When to show progress: bars on a terminal, lines in a log file, nothing in a notebook kernel."""

from __future__ import annotations

import sys


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` flag for a ``progress`` choice (``None``: automatic).

    Automatic means hidden inside a Jupyter kernel (a chapter executed by papermill would
    otherwise fill the book with bars), and otherwise shown only on a terminal.
    """
    if progress is not None:
        return not progress
    if "ipykernel" in sys.modules:
        return True
    return None  # tqdm: disabled when the stream is not a TTY


def log_lines(progress: bool | None) -> bool:
    """Whether a long loop should print one line per step instead of a bar: automatic
    progress in a headless run (stderr is a log file, not a terminal nor a notebook)."""
    return progress is None and "ipykernel" not in sys.modules and not sys.stderr.isatty()
