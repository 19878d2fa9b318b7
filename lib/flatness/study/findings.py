"""The results page: each claim of the paper beside this study's numbers and its status.

Statuses come from :mod:`flatness.study.claims` through each chapter's analysis
(:mod:`flatness.study.analysis`), the very objects the chapter pages render, so the two can
not disagree. The README's results table is :func:`readme_table` of the committed results,
the regime they come from :func:`readme_regime`, and how they were computed
:func:`readme_study` (``tests/test_claims.py`` checks that all three are up to date).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from flatness.provenance import short_commit
from flatness.results import Result
from flatness.scales import get_scale
from flatness.study.analysis import CHAPTERS, TITLES, all_claims
from flatness.study.claims import Claim
from flatness.study.report import claims_table, zoo_strength

#: The README's generated table sits between these two lines.
README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"
#: The README's generated regime statement sits between these two lines.
REGIME_START, REGIME_END = "<!-- regime:start -->", "<!-- regime:end -->"
#: The README's generated account of how the committed study was computed.
STUDY_START, STUDY_END = "<!-- study:start -->", "<!-- study:end -->"


def load_results(loader: Callable[[str], Result | None]) -> dict[str, Result | None]:
    """``{chapter: result or None}`` using ``loader(chapter)``, in book order."""
    return {name: loader(name) for name in CHAPTERS}


def results_markdown(results: dict[str, Result | None]) -> str:
    """The results page's table of every claim."""
    return claims_table(all_claims(results))


def paper_chapters(results: Mapping[str, Result | None]) -> dict[str, Result | None]:
    """The results of the paper's chapters (1-5) among ``results``: the regime map (chapter
    0), which a book's page may pass along with them, places them rather than joining them."""
    return {chapter: result for chapter, result in results.items() if chapter in TITLES}


def regime_markdown(results: Mapping[str, Result | None]) -> str:
    """Where on the regime map (chapter 0) each scale of ``results`` sits: the map's choice
    at that scale and whether the scale's surrogate recipe is that cell, so that no status is
    read without the regime its surrogates were trained in."""
    from flatness.study.analysis.regimes import recommendation_markdown
    from flatness.study.chapter import PUBLISHED_SCALES, committed_result

    results = paper_chapters(results)
    scales = {r.scale for r in results.values() if r is not None}
    if not scales:
        return "No chapter has a current result: there is no regime to place."
    if scales == {"smoke"}:
        return ("Only `smoke` results: they prove that the code runs, at no regime of the "
                "paper's.")
    parts = []
    for name in sorted(scales, key=lambda s: (s not in PUBLISHED_SCALES, s)):
        chapters = ", ".join(TITLES[c] for c, r in results.items() if r and r.scale == name)
        head = f"**`{name}`** ({chapters})."
        if name == "smoke":
            parts.append(f"{head} Smoke results prove that the code runs; they carry no claim.")
            continue
        scale = get_scale(name)
        recipe = (scale.train_subset, scale.epochs, scale.surrogate.width)
        regimes = committed_result("regimes", scale)
        if regimes is None:
            parts.append(f"{head} No current regime map at this scale (`python -m flatness "
                         f"chapter regimes --scale {name}`): its regime is not measured.")
        else:
            parts.append(f"{head} {recommendation_markdown(regimes.data, recipe)}")
    return "\n\n".join(parts)


def study_markdown(results: Mapping[str, Result | None]) -> str:
    """How each (non-smoke) scale of ``results`` was computed, from the result files and the
    scale: chapters and seeds, the surrogate and target recipes, the attack, the jobs and their
    recorded compute, where and at which commits. The regime map's result (chapter 0) joins
    its scale's chapters when it is current."""
    from flatness.study.chapter import PUBLISHED_SCALES, committed_result

    results = paper_chapters(results)
    scales = sorted({r.scale for r in results.values() if r is not None and r.scale != "smoke"},
                    key=lambda s: (s not in PUBLISHED_SCALES, s))
    if not scales:
        return "No chapter has a committed result beyond `smoke`."
    parts = []
    for name in scales:
        scale = get_scale(name)
        chapters = {TITLES[c]: r for c, r in results.items() if r and r.scale == name}
        regimes = committed_result("regimes", scale)
        files = [*([regimes] if regimes else []), *chapters.values()]
        seeds = sorted({seed for r in chapters.values() for seed in r.seeds})
        prov = [r.provenance for r in files]
        precision = precisions_text({**({"the regime map": regimes} if regimes else {}),
                                     **chapters})
        devices = sorted({d for p in prov for d in (p.get("compute_devices") or {})
                          if d != "unrecorded"})
        commits = sorted({short_commit(str(p["code_commit"]), 7) for p in prov
                          if p.get("code_commit")})
        hours = sum(float(p.get("compute_time_s") or 0.0) for p in prov) / 3600
        jobs = sum(int(p.get("jobs") or 0) for p in prov)
        s, t = scale.surrogate, scale.targets
        decays = ", ".join(map(str, scale.decay_epochs)) or "none"
        zoo = ", ".join(f"`{m.arch}@{m.width:g}`" for m in t)
        map_part = (f"; the regime map (chapter 0) over seeds {_listed(regimes.seeds)}"
                    if regimes else "")
        parts.append("\n".join([
            f"**`{name}`**: {', '.join(chapters)} over seeds {_listed(seeds)}{map_part}.",
            f"- Surrogate: `{s.arch}@{s.width:g}` trained on "
            f"{_images(scale.train_subset)} for {scale.epochs} epochs, SGD (lr {scale.lr:g}, "
            f"momentum {scale.momentum:g}, weight decay {scale.weight_decay:g}, batch "
            f"{scale.batch_size}), learning rate /10 at epochs {decays}, "
            f"{precision}.",
            f"- Targets: {zoo}, each trained {scale.target_epochs or scale.epochs} epochs on "
            f"{_images(scale.target_train_subset or scale.train_subset)}"
            f"{targets_strength_text(files)}.",
            f"- Attack: BIM L∞ {_budget(scale.eps)}, {scale.attack_steps} steps, on "
            f"{scale.n_attack_images:,} CIFAR-10 test images every target classifies correctly.",
            f"- Compute: {jobs:,} jobs recording {hours:.1f} h of compute (a job shared by two "
            f"results counts in each), on {', '.join(devices) or 'unrecorded devices'}; the "
            f"results written at code commit{'s' if len(commits) > 1 else ''} "
            f"{', '.join(commits) or 'unrecorded'}.",
        ]))
    return "\n\n".join(parts)


def targets_strength_text(files: list[Result]) -> str:
    """`` (4 targets, 62.1-74.0 % test accuracy)``: the target accuracies ``files`` record (a
    result's provenance, the regime map's summary), per precision when they differ, since each
    precision trains its own targets ("" when none records them)."""
    by_precision: dict[str, dict[str, float | None]] = {}
    for result in files:
        recorded = (result.provenance.get("target_accuracy")
                    or result.data.get("target_accuracy") or {})
        if recorded:
            precision = str(result.provenance.get("precision") or "an unrecorded precision")
            by_precision.setdefault(precision, {}).update(recorded)
    return zoo_strength(by_precision)


def precisions_text(results: Mapping[str, Result]) -> str:
    """The training precision of ``results`` (title to result): one word when they share it,
    else which precision each chapter was computed at, since each precision trains its own
    surrogates and targets (precision is part of every run's identity)."""
    by_precision: dict[str, list[str]] = {}
    for title, result in results.items():
        precision = str(result.provenance.get("precision") or "precision unrecorded")
        by_precision.setdefault(precision, []).append(title)
    if len(by_precision) <= 1:
        return next(iter(by_precision), "precision unrecorded")
    listed = "; ".join(f"{precision} for {', '.join(titles)}"
                       for precision, titles in sorted(by_precision.items()))
    return (f"{listed} (each precision trains its own surrogates and targets, so absolute "
            f"numbers compare within a chapter)")


def _listed(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds)) or "none"


def _images(count: int | None) -> str:
    return "all 50,000 CIFAR-10 training images" if count is None else f"{count:,} images"


def _budget(eps: float) -> str:
    """8/255 for a budget on the 255 grid, else the number."""
    steps = eps * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-6 else f"{eps:g}"


def committed_results() -> dict[str, Result | None]:
    """Every chapter's committed result at its largest current scale (None where only
    ``smoke`` would serve it)."""
    from flatness.study.chapter import committed_result, resolve_scale

    def load(chapter: str) -> Result | None:
        scale = resolve_scale(chapter, "auto")
        return None if scale == "smoke" else committed_result(chapter, get_scale(scale))

    return load_results(load)


def committed_claims() -> list[Claim]:
    """Every claim of the committed results (the largest current scale per chapter)."""
    return all_claims(committed_results())


def readme_table() -> str:
    """The README's results table: the committed results' claims, between the markers."""
    return f"{README_START}\n{claims_table(committed_claims())}\n{README_END}"


def readme_regime() -> str:
    """The README's regime statement: :func:`regime_markdown` of the committed results,
    between its markers."""
    return f"{REGIME_START}\n{regime_markdown(committed_results())}\n{REGIME_END}"


def readme_study() -> str:
    """The README's account of the committed study: :func:`study_markdown` of the committed
    results, between its markers."""
    return f"{STUDY_START}\n{study_markdown(committed_results())}\n{STUDY_END}"


def _block(text: str, start: str, end: str) -> str:
    first, last = text.index(start), text.index(end) + len(end)
    return text[first:last]


def readme_section(readme: Path, start: str = README_START, end: str = README_END) -> str:
    """A generated block as it stands in ``readme`` (markers included; default: the table)."""
    return _block(readme.read_text(), start, end)


def update_readme(readme: Path) -> bool:
    """Rewrite the README's generated blocks (the table, the regime, the study's account)
    from the committed results; True when one changed."""
    text = original = readme.read_text()
    for (start, end), new in (((README_START, README_END), readme_table()),
                              ((REGIME_START, REGIME_END), readme_regime()),
                              ((STUDY_START, STUDY_END), readme_study())):
        text = text.replace(_block(text, start, end), new)
    if text == original:
        return False
    readme.write_text(text)
    return True
