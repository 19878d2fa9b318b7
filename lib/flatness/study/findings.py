"""The results page: each claim of the paper beside this study's numbers and its status.

Statuses come from :mod:`flatness.study.claims` through each chapter's analysis
(:mod:`flatness.study.analysis`), the very objects the chapter pages render, so the two can
not disagree. The README's results table is :func:`readme_table` of the committed results
(``tests/test_claims.py`` checks that it is up to date).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flatness.results import Result
from flatness.study.analysis import CHAPTERS, all_claims
from flatness.study.claims import Claim
from flatness.study.report import claims_table

#: The README's generated table sits between these two lines.
README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"


def load_results(loader: Callable[[str], Result | None]) -> dict[str, Result | None]:
    """``{chapter: result or None}`` using ``loader(chapter)``, in book order."""
    return {name: loader(name) for name in CHAPTERS}


def results_markdown(results: dict[str, Result | None]) -> str:
    """The results page's table of every claim."""
    return claims_table(all_claims(results))


def committed_claims() -> list[Claim]:
    """Every claim of the committed results (the largest current scale per chapter)."""
    from flatness.scales import get_scale
    from flatness.study.chapter import committed_result, resolve_scale

    def load(chapter: str) -> Result | None:
        scale = resolve_scale(chapter, "auto")
        return None if scale == "smoke" else committed_result(chapter, get_scale(scale))

    return all_claims(load_results(load))


def readme_table() -> str:
    """The README's results table: the committed results' claims, between the markers."""
    return f"{README_START}\n{claims_table(committed_claims())}\n{README_END}"


def readme_section(readme: Path) -> str:
    """The generated table as it stands in ``readme`` (markers included)."""
    text = readme.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    return text[start:end]


def update_readme(readme: Path) -> bool:
    """Rewrite the README's table from the committed results; True when it changed."""
    text = readme.read_text()
    old = readme_section(readme)
    new = readme_table()
    if old == new:
        return False
    readme.write_text(text.replace(old, new))
    return True
