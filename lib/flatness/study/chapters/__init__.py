"""The book's chapters as data (see :mod:`flatness.study.chapter`).

Each module is a chapter's design (its parameters and the jobs they imply; its analysis is
:mod:`flatness.study.analysis`'s module of the same name) and defines ``CHAPTER``; this
registry maps chapter names to them.
"""

from __future__ import annotations

import importlib

from flatness.errors import FlatnessError
from flatness.study.chapter import Chapter

MODULES = (
    "regimes", "robust_features", "lr_decay", "sharpness", "minimizers", "complementarity")


def chapters() -> dict[str, Chapter]:
    """Every chapter whose module exists, by name, in book order."""
    found = {}
    for module_name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{module_name}":
                continue
            raise
        found[module.CHAPTER.name] = module.CHAPTER
    return found


def get_chapter(name: str) -> Chapter:
    known = chapters()
    if name not in known:
        raise FlatnessError(f"unknown chapter {name!r}; choose one of: {', '.join(known)}")
    return known[name]


def select_chapters(names: list[str] | None = None) -> list[Chapter]:
    """The chapters ``names`` (every chapter, in book order, when None)."""
    return [get_chapter(n) for n in names] if names else list(chapters().values())
