"""The whole book build: execute chapters (papermill), write generated pages, run Jupyter Book.

A failing chapter does not stop the others: its notebook is kept with the traceback, the
book is built with it, and the build reports failure at the end. Sphinx warnings are parsed
from the build log; those about missing documents are counted separately (the book is built
from a toc listing only the chapters that have an executed notebook, so there should be none).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flatness.book.execute import ChapterRun, execute_chapter, split_parameters
from flatness.book.reproducibility import write_page
from flatness.book.toc import available_toc, read_chapters, select_chapters
from flatness.errors import FlatnessError

BUILD_DIR = "_build"
LOG_NAME = "book-build.log"
#: Warnings meaning a page or file the book refers to does not exist.
MISSING_PATTERNS = re.compile(
    r"nonexisting document|isn't included in any toctree|not readable|does not exist|"
    r"not found|unknown document|\[etoc\]", re.IGNORECASE)
_WARNING = re.compile(r"WARNING|ERROR|CRITICAL")


@dataclass
class BookReport:
    """What a build did: one run per executed chapter, the HTML build status and warnings."""

    runs: list[ChapterRun] = field(default_factory=list)
    html_ok: bool = False
    html_dir: Path | None = None
    log: Path | None = None
    warnings: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # chapters with no executed notebook
    seconds: float = 0.0

    @property
    def missing_file_warnings(self) -> list[str]:
        return [w for w in self.warnings if MISSING_PATTERNS.search(w)]

    @property
    def ok(self) -> bool:
        return self.html_ok and all(r.status != "failed" for r in self.runs)

    def summary(self) -> str:
        """A plain-text table: chapter, status, time, parameters or error."""
        lines = [f"{'chapter':<28} {'status':<8} {'time':>8}  details", "-" * 78]
        for run in self.runs:
            details = run.error if run.status == "failed" else ", ".join(
                f"{k}={v!r}" for k, v in run.parameters.items())
            if run.ignored:
                details += f" (does not take: {', '.join(run.ignored)})"
            lines.append(f"{run.name:<28} {run.status:<8} {run.seconds:>7.1f}s  {details}")
        for name in self.left_out:
            lines.append(f"{name:<28} {'absent':<8} {'':>8}  never executed: left out of the book")
        html = "ok" if self.html_ok else "FAILED"
        lines.append("-" * 78)
        lines.append(f"html: {html} -> {self.html_dir}/index.html ({len(self.warnings)} warnings, "
                     f"{len(self.missing_file_warnings)} about missing files; log: {self.log})")
        lines.append(f"total {self.seconds:.1f}s")
        return "\n".join(lines)


def parse_warnings(log: str) -> list[str]:
    """The warning and error lines of a Sphinx / Jupyter Book log."""
    return [line.strip() for line in log.splitlines() if _WARNING.search(line)]


def build_html(root: Path, *, strict: bool = False, all_pages: bool = False) -> tuple[bool, Path,
                                                                                     list[str]]:
    """Run ``jupyter-book build`` on ``root`` from the chapters executed so far.

    Returns (success, log path, warnings). The toc used lists only the chapters that have an
    executed notebook (written to ``_build/_toc.yml``).
    """
    root = Path(root).resolve()
    build = root / BUILD_DIR
    toc = build / "_toc.yml"
    available_toc(root, toc)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(root), "--toc", str(toc), "--path-output", str(root)]
    if strict:
        cmd += ["-W", "--keep-going"]
    if all_pages:
        cmd.append("--all")
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    log = build / LOG_NAME
    log.write_text(proc.stdout + "\n" + proc.stderr)
    warnings = parse_warnings(proc.stdout + "\n" + proc.stderr)
    ok = proc.returncode == 0 and (build / "html" / "index.html").is_file()
    return ok, log, warnings


def build_book(
    root: Path, *, chapters: list[str] | None = None, parameters: dict[str, Any] | None = None,
    execute: bool = True, timeout: float | None = None, strict: bool = False,
    all_pages: bool = False, echo: Any = print,
) -> BookReport:
    """Execute the selected chapters (all by default) then build the HTML book.

    ``parameters`` go to each chapter that declares them in its ``parameters`` cell; a
    parameter no selected chapter declares is an error (most likely a typo).
    """
    start = time.perf_counter()
    root = Path(root).resolve()
    report = BookReport(html_dir=root / BUILD_DIR / "html")
    selected = select_chapters(read_chapters(root), chapters)
    parameters = dict(parameters or {})
    if execute:
        missing = [c.name for c in selected if not c.source.is_file()]
        if missing:
            raise FlatnessError(f"source notebooks missing for: {', '.join(missing)} "
                                f"(expected notebooks/<chapter>.ipynb)")
        if parameters:
            unused = set(parameters)
            for chapter in selected:
                unused -= set(split_parameters(chapter, parameters)[0])
            if unused:
                raise FlatnessError(
                    f"no selected chapter takes parameter(s) {', '.join(sorted(unused))}; "
                    f"check the spelling against the chapters' parameters cells")
        for chapter in selected:
            echo(f"executing {chapter.name} ...", flush=True)
            run = execute_chapter(chapter, parameters, root=root, timeout=timeout)
            echo(f"  {run.status} in {run.seconds:.1f}s" + (f": {run.error}" if run.error else ""),
                 flush=True)
            report.runs.append(run)
    write_page(root / "results", root / "book" / "reproducibility.md")
    report.left_out = [c.name for c in read_chapters(root) if not c.executed.is_file()]
    echo("building html with jupyter-book ...", flush=True)
    report.html_ok, report.log, report.warnings = build_html(root, strict=strict,
                                                             all_pages=all_pages)
    report.seconds = time.perf_counter() - start
    return report
