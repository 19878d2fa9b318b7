"""The chapters of the book, read from ``_toc.yml`` so that the list exists in one place.

A toc entry ``file: book/chapters/NAME`` is a chapter: its source is ``notebooks/NAME.ipynb``
(output-free, in git) and papermill writes the executed copy to ``book/chapters/NAME.ipynb``
(a build product). Other entries (``book/intro``, ``book/reproducibility``) are static pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flatness.errors import FlatnessError

CHAPTERS_DIR = "book/chapters"
SOURCES_DIR = "notebooks"


@dataclass(frozen=True)
class Chapter:
    """One chapter: its name, source notebook and executed copy (absolute paths)."""

    name: str
    source: Path
    executed: Path


def _entries(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                yield from _entries(child)
    elif isinstance(node, list):
        for child in node:
            yield from _entries(child)


def read_toc(root: Path) -> dict[str, Any]:
    path = Path(root) / "_toc.yml"
    if not path.is_file():
        raise FlatnessError(f"{path} does not exist: run from the repository root (or pass root)")
    return yaml.safe_load(path.read_text())


def toc_files(toc: dict[str, Any]) -> list[str]:
    """Every ``file:`` of the toc (root first), without suffix."""
    return [str(e["file"]).removesuffix(".ipynb").removesuffix(".md")
            for e in _entries(toc) if "file" in e]


def read_chapters(root: Path) -> list[Chapter]:
    """The chapters listed in ``_toc.yml``, in order."""
    root = Path(root).resolve()
    chapters = []
    for file in toc_files(read_toc(root)):
        if file.startswith(CHAPTERS_DIR + "/"):
            name = file.removeprefix(CHAPTERS_DIR + "/")
            chapters.append(Chapter(name, root / SOURCES_DIR / f"{name}.ipynb",
                                    root / CHAPTERS_DIR / f"{name}.ipynb"))
    return chapters


def select_chapters(chapters: list[Chapter], names: list[str] | None) -> list[Chapter]:
    """The chapters named in ``names`` (a name or a unique prefix such as ``04``); all if None."""
    if not names:
        return chapters
    selected = []
    for name in names:
        matches = [c for c in chapters if c.name == name] or [
            c for c in chapters if c.name.startswith(name)]
        if len(matches) != 1:
            known = ", ".join(c.name for c in chapters)
            what = "no chapter" if not matches else "several chapters"
            raise FlatnessError(f"{what} named {name!r}; chapters: {known}")
        if matches[0] not in selected:
            selected.append(matches[0])
    return selected


def _prune(node: Any, keep: set[str]) -> Any:
    """A copy of a toc node without the chapter entries whose file is not in ``keep``."""
    if isinstance(node, list):
        pruned = [_prune(child, keep) for child in node]
        return [child for child in pruned if child is not None]
    if isinstance(node, dict):
        file = str(node.get("file", "")).removesuffix(".ipynb")
        if file.startswith(CHAPTERS_DIR + "/") and file not in keep:
            return None
        out = {}
        for key, value in node.items():
            value = _prune(value, keep) if key in ("parts", "chapters", "sections") else value
            if key in ("parts", "chapters", "sections") and not value:
                continue
            out[key] = value
        if "parts" in node and "parts" not in out:
            return out  # every part emptied: keep the root
        if "chapters" in node and "chapters" not in out and "file" not in out:
            return None  # an empty part
        return out
    return node


def available_toc(root: Path, path: Path) -> list[str]:
    """Write a toc with only the chapters whose executed notebook exists; return the missing.

    The book is built from this toc, so a chapter never executed is left out of the book
    rather than causing Sphinx warnings about missing documents.
    """
    root = Path(root).resolve()
    chapters = read_chapters(root)
    present = {f"{CHAPTERS_DIR}/{c.name}" for c in chapters if c.executed.is_file()}
    missing = [c.name for c in chapters if not c.executed.is_file()]
    pruned = _prune(read_toc(root), present)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(pruned, sort_keys=False))
    return missing
