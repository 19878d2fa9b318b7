"""What a chapter prints beside its figures: where the numbers come from, and verdicts."""

from __future__ import annotations

from typing import Any

from flatness.results import Result


def provenance_markdown(result: Result) -> str:
    """A one-table summary of a chapter result's provenance (scale, device, seeds, commit...)."""
    p = result.provenance
    compute = p.get("compute_time_s")
    rows = [
        ("scale", f"`{result.scale}`"),
        ("device", p.get("device", "?")),
        ("seeds", ", ".join(map(str, result.seeds)) or "-"),
        ("data copy", result.data_copy or "?"),
        ("code commit", f"`{p.get('code_commit', '?')}`"),
        ("computed", p.get("created", "?")),
        ("compute time", f"{compute / 60:.1f} min over {p.get('jobs', '?')} jobs"
         if compute is not None else "?"),
        ("parameters", ", ".join(f"`{k}={_compact(v)}`"
                                 for k, v in result.config.get("params", {}).items())),
    ]
    lines = ["| provenance | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if result.scale == "smoke":
        lines.append("")
        lines.append("**Smoke scale**: these numbers only prove the code paths run; they carry "
                     "no scientific claim. Re-run at `cpu`, `gpu` or `paper` scale.")
    return "\n".join(lines)


def _compact(value: Any) -> str:
    """A parameter value on one line (lists and dicts as compact JSON)."""
    import json

    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(
        value)


def beyond_spread(gain: float | None, spread: float) -> bool | None:
    """The book's rule for a claimed gain: beyond the seed-to-seed spread it agrees (True),
    no gain at all disagrees (False), a positive gain within the spread is inconclusive (None,
    as is a missing number)."""
    if gain is None:
        return None
    return True if gain > spread else (False if gain <= 0 else None)


def verdict(agrees: bool | None, claim: str, evidence: str) -> str:
    """A markdown line: the paper's claim, whether this run agrees, and the numbers."""
    label = {True: "agrees", False: "disagrees", None: "inconclusive"}[agrees]
    return f"- **{label}**: {claim} ({evidence})"


def show_markdown(text: str) -> None:
    """Display markdown in a notebook (plain print elsewhere)."""
    try:
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        print(text)
        return
    display(Markdown(text))


def fmt(value: Any, digits: int = 3) -> str:
    """A number for prose: ``0.123``, or ``n/a`` for missing values."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"
