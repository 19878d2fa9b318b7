"""When to show progress bars: on a terminal, never inside a notebook kernel or a log file."""

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
