"""What a chapter prints beside its figures: where the numbers come from, and its claims."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flatness.results import Result
from flatness.study.analysis import TITLES
from flatness.study.claims import Claim, standing


def provenance_markdown(result: Result) -> str:
    """A one-table summary of a chapter result's provenance (scale, device, seeds, commit...)."""
    p = result.provenance
    compute = p.get("compute_time_s")
    rows = [
        ("scale", f"`{result.scale}`"),
        ("device", devices_text(p)),
        ("precision", _precision_text(p.get("precision"))),
        ("targets", targets_text(p.get("target_accuracy"))),
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
                     "no scientific claim. Re-run at `cpu`, `gpu` or `paper` scale."
                     + _stale_text(str(result.config.get("chapter", ""))))
    return "\n".join(lines)


def _stale_text(chapter: str) -> str:
    """A sentence per committed result of ``chapter`` that the book does not show because it
    is stale, with why and how to recompute it ("" when there is none)."""
    from flatness.study.chapter import stale_results

    stale = stale_results(chapter) if chapter else {}
    return "".join(f" The committed `{scale}` result of this chapter is not shown: {why}; it "
                   f"awaits its recompute (`python -m flatness chapter {chapter} --scale "
                   f"{scale}`)." for scale, why in stale.items())


def _precision_text(precision: Any) -> str:
    """The training precision a result records, as a reader needs it."""
    if precision == "bf16":
        return "bf16 autocast"
    return str(precision) if precision else "unrecorded"


def targets_text(accuracy: dict[str, float | None] | None) -> str:
    """``4 CIFAR-10 targets, 57.5-74.4 % test accuracy``: how strong the zoo a result was
    measured on is (each precision trains its own), or "unrecorded" for an older result."""
    if not accuracy:
        return "unrecorded"
    recorded = [a for a in accuracy.values() if a is not None]
    strength = f", {accuracy_range(recorded)} test accuracy" if recorded else ""
    return f"{len(accuracy)} CIFAR-10 targets{strength}"


def zoo_strength(by_precision: Mapping[str, Mapping[str, float | None]]) -> str:
    """`` (4 targets, 62.1-74.0 % test accuracy)`` for target accuracies by precision, each
    precision's range named when there are several (each trains its own targets); "" when
    none is recorded. The prose form; :func:`targets_text` is the provenance table's."""
    ranges = {precision: accuracy_range([a for a in accuracy.values() if a is not None])
              for precision, accuracy in sorted(by_precision.items())
              if any(a is not None for a in accuracy.values())}
    if not ranges:
        return ""
    count = max(len(accuracy) for accuracy in by_precision.values())
    if len(ranges) == 1:
        return f" ({count} targets, {next(iter(ranges.values()))} test accuracy)"
    listed = ", ".join(f"{spread} at {precision}" for precision, spread in ranges.items())
    return f" ({count} targets per precision, test accuracy {listed})"


def accuracy_range(accuracy: list[float]) -> str:
    """``57.5-74.4 %`` (``62.1 %`` when they are equal) for accuracies in [0, 1]."""
    low, high = 100 * min(accuracy), 100 * max(accuracy)
    return f"{low:.1f} %" if low == high else f"{low:.1f}-{high:.1f} %"


def devices_text(p: dict[str, Any]) -> str:
    """Where the jobs ran (jobs per device), and the process that summarised them if elsewhere."""
    counts = p.get("compute_devices")
    if not counts:
        return str(p.get("device", "?"))
    ran = ", ".join(f"{device} ({n} job{'s' if n != 1 else ''})" for device, n in counts.items())
    summary = p.get("device")
    return ran if summary in counts or summary is None else f"{ran}; summarised on {summary}"


def _compact(value: Any) -> str:
    """A parameter value on one line (lists and dicts as compact JSON)."""
    import json

    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(
        value)


def claims_markdown(claims: list[Claim]) -> str:
    """A chapter page's verdicts: each claim's status and statement, then its comparisons
    with their numbers (the rule is :mod:`flatness.study.claims`'s)."""
    blocks = []
    for claim in claims:
        head = f"**{claim.status}**: {claim.paper}"
        if claim.prerequisite:
            head = f"*(premise)* {head}"
        if not claim.comparisons:
            blocks.append(f"{head} {claim.note or 'Not computed with these parameters.'}")
            continue
        rows = ["| comparison | mean difference | 95 % interval | over | t | stands |",
                "|---|---|---|---|---|---|"]
        for c in claim.comparisons:
            t, half = c.t, c.half_width
            interval = "n/a" if half is None else "± " + c.shown(half, signed=False)
            rows.append(f"| {c.label} | {c.shown(c.mean)} | {interval} | {c.basis} | "
                        f"{'n/a' if t is None else f'{t:+.1f}'} | {standing(c)} |")
        note = f"\n\n{claim.note}" if claim.note else ""
        blocks.append(head + "\n\n" + "\n".join(rows) + note)
    return "\n\n".join(blocks)


def claims_table(claims: list[Claim]) -> str:
    """The results page's (and the README's) table: one row per claim."""
    lines = ["| chapter | the paper | status | this study | scale |", "|---|---|---|---|---|"]
    for claim in claims:
        paper = f"(premise) {claim.paper}" if claim.prerequisite else claim.paper
        cells = [TITLES.get(claim.chapter, claim.chapter), paper, f"**{claim.status}**",
                 claim.summary(), f"`{claim.scale}`"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


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
