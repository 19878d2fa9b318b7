"""Executing one chapter notebook with papermill, in the current interpreter.

The kernel runs ``sys.executable -m ipykernel_launcher`` whatever kernelspecs the user has
installed (a user-level ``python3`` kernelspec may point at another Python without
``flatness``), and its working directory is the repository root, so notebooks can use
relative paths such as ``results/cpu/...``. The executed notebook is then dressed for the
reader: a short table of every parameter (type, the value this page used and its default,
what it sets) follows the cell tagged ``parameters-table`` and replaces the parameters cells
on the page.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from flatness.book.toc import Chapter
from flatness.errors import FlatnessError
from flatness.io import write_text

#: The cell after which the executed notebook gets its table of parameters.
TABLE_TAG = "parameters-table"


class CurrentPythonKernelManager(KernelManager):
    """A kernel manager whose kernel is always ``sys.executable`` (the venv's Python)."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (flatness)", language="python", name="python3",
        )


@dataclass
class ChapterRun:
    """The outcome of executing one chapter."""

    name: str
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # given parameters it does not declare


def declared_parameters(source: Path) -> dict[str, Any]:
    """The names (and papermill's description) of a notebook's ``parameters`` cell."""
    import papermill

    return dict(papermill.inspect_notebook(str(source)))


def split_parameters(chapter: Chapter, parameters: dict[str, Any]) -> tuple[dict, list[str]]:
    """The parameters this chapter declares, and the names it does not declare."""
    declared = declared_parameters(chapter.source)
    used = {k: v for k, v in parameters.items() if k in declared}
    return used, sorted(set(parameters) - set(declared))


def execute_chapter(
    chapter: Chapter, parameters: dict[str, Any] | None = None, *, root: Path,
    timeout: float | None = None, log_output: bool = False,
) -> ChapterRun:
    """Execute ``chapter.source`` into ``chapter.executed`` with the parameters it declares.

    A failing notebook is still written (papermill marks the failing cell and keeps the
    traceback); the error is returned, not raised, so the other chapters can still run.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if not chapter.source.is_file():
        raise FlatnessError(f"chapter {chapter.name}: source notebook {chapter.source} is missing")
    used, ignored = split_parameters(chapter, parameters or {})
    chapter.executed.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run = ChapterRun(chapter.name, "ok", parameters=used, ignored=ignored)
    try:
        papermill.execute_notebook(
            str(chapter.source), str(chapter.executed), parameters=used, cwd=str(root),
            kernel_name="python3", kernel_manager_class=CurrentPythonKernelManager,
            progress_bar=False, log_output=log_output, execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        first_line = (str(exc.evalue).strip().splitlines() or [""])[0]
        run.status, run.error = "failed", f"{exc.ename}: {first_line}".strip()
    except Exception as exc:  # kernel died, timeout, bad notebook: still report and go on
        first_line = (str(exc).strip().splitlines() or [""])[0]
        run.status, run.error = "failed", f"{type(exc).__name__}: {first_line}".strip()
    run.seconds = time.perf_counter() - start
    if chapter.executed.is_file():
        add_parameters_table(chapter.executed, declared_parameters(chapter.source), used)
    return run


def _literal(value: Any) -> str:
    """A value as it would be written in the parameters cell (double-quoted strings)."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def parameters_table(declared: dict[str, Any], used: dict[str, Any]) -> str:
    """Markdown: one row per parameter with its type, this page's value and what it sets."""
    rows = ["| parameter | type | this page | what it sets |", "|---|---|---|---|"]
    for name, info in declared.items():
        default = str(info.get("default", ""))
        value = f"`{default}`"
        if name in used and _literal(used[name]) != default:
            value = f"`{_literal(used[name])}` (default `{default}`)"
        kind = str(info.get("inferred_type_name", ""))
        cells = [f"`{name}`", "" if kind == "None" else kind, value, str(info.get("help", ""))]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def add_parameters_table(executed: Path, declared: dict[str, Any], used: dict[str, Any]) -> None:
    """Add the table after the ``parameters-table`` cell; the parameters cells (the notebook's
    and papermill's), which the table restates, leave the page."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
        cells.append(cell)
        if TABLE_TAG in tags:
            cells.append(nbformat.v4.new_markdown_cell(parameters_table(declared, used)))
    nb.cells = cells
    write_text(executed, nbformat.writes(nb))
