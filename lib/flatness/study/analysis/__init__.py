"""Each chapter's analysis: its job outputs in, its summary and the paper's claims out.

A module per chapter defines ``summarize(ctx, params, outputs)`` (the summary a result stores;
it imports the chapter's design, :mod:`flatness.study.chapters`, to find each job's output by
the job's key, and the design names it back lazily, with
:class:`~flatness.study.chapter.AnalysisSummary`) and ``claims(data, scale)`` (the claims,
:mod:`flatness.study.claims`). The chapter page, the results page and the README's table all
call :func:`claims_of`, so a claim's status is decided in one place, by one rule.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from flatness.errors import FlatnessError
from flatness.results import Result
from flatness.study.claims import NOT_COMPUTED, Claim

#: Chapters in book order; each module ``analysis.<name>`` defines ``claims(data, scale)``.
CHAPTERS = ("robust_features", "lr_decay", "sharpness", "minimizers", "complementarity")
TITLES = {"robust_features": "1. Robust and non-robust features",
          "lr_decay": "2. Learning-rate decay", "sharpness": "3. Sharpness",
          "minimizers": "4. Minimizers", "complementarity": "5. Complementarity"}


def builder(chapter: str) -> Callable[[dict[str, Any], str], list[Claim]]:
    """The ``claims(data, scale)`` function of ``chapter``'s analysis."""
    if chapter not in CHAPTERS:
        raise KeyError(chapter)
    return importlib.import_module(f"{__name__}.{chapter}").claims


def claims_of(result: Result) -> list[Claim]:
    """The claims a chapter's result speaks to, with their statuses (none for a chapter that
    tests no claim of the paper: the regime map chooses where the others are tested)."""
    from flatness.study.chapters import get_chapter  # the chapters import their analyses

    chapter = result.config["chapter"]
    if chapter not in CHAPTERS:
        return []
    stored, current = result.config.get("summary_version", 1), get_chapter(chapter).summary_version
    if stored != current:
        raise FlatnessError(f"this {chapter} result's summary has version {stored} of the "
                            f"chapter's format; the code reads version {current}: recompute it")
    return builder(chapter)(result.data, result.scale)


def all_claims(results: Mapping[str, Result | None]) -> list[Claim]:
    """Every chapter's claims in book order; a chapter without a result gives one
    ``not computed`` row, which names a committed result awaiting its recompute."""
    from flatness.study.chapter import stale_results  # the chapter module imports this one

    rows: list[Claim] = []
    for chapter in CHAPTERS:
        result = results.get(chapter)
        if result is None:
            stale = stale_results(chapter)
            note = "; ".join(f"the `{scale}` result awaits its recompute ({why})"
                             for scale, why in stale.items())
            rows.append(Claim(chapter, "missing", "(see the chapter)",
                              note=note or "no current result at this scale"))
        else:
            rows.extend(claims_of(result))
    return rows


__all__ = ["CHAPTERS", "NOT_COMPUTED", "TITLES", "all_claims", "builder", "claims_of"]
