"""``python -m flatness book``: execute every chapter with papermill, then build the HTML book."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from flatness.paths import repo_root

NAME = "book"
HELP = ("execute the chapter notebooks with papermill into book/chapters/, then build the HTML "
        "book with Jupyter Book (output: _build/html)")


def parse_value(text: str) -> Any:
    """A command-line parameter value as YAML: 0.5, true, null, [0, 1], 4/255 (a string)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", default=None,
                        help="scale passed to every chapter (smoke, cpu, gpu, paper); default: "
                        "each notebook's own default")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"),
                        help="a chapter parameter, value read as YAML (repeatable), e.g. "
                        "-p rho 0.5 -p seeds '[0, 1]'; given to the chapters that declare it")
    parser.add_argument("--chapters", default=None,
                        help="comma-separated chapter names or prefixes (e.g. 02,04); "
                        "default: all chapters of _toc.yml")
    parser.add_argument("--no-execute", action="store_true",
                        help="do not run papermill: rebuild the HTML from the executed notebooks")
    parser.add_argument("--timeout", type=float, default=None,
                        help="per-cell execution timeout in seconds (default: none)")
    parser.add_argument("--strict", action="store_true",
                        help="treat Sphinx warnings as errors")
    parser.add_argument("--all", dest="all_pages", action="store_true",
                        help="re-render every page (default: only changed ones)")
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from flatness.book.build import build_book

    parameters = {name: parse_value(value) for name, value in args.parameter}
    if args.scale is not None:
        parameters["scale"] = args.scale
    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()] if args.chapters \
        else None
    report = build_book(
        Path(args.root) if args.root else repo_root(), chapters=chapters,
        parameters=parameters, execute=not args.no_execute, timeout=args.timeout,
        strict=args.strict, all_pages=args.all_pages,
    )
    print(report.summary())
    if not report.html_ok and report.log is not None:
        print(f"jupyter-book failed; last lines of {report.log}:")
        print("\n".join(report.log.read_text().splitlines()[-20:]))
    return 0 if report.ok else 1
