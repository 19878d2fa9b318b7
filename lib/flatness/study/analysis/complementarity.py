"""Chapter 5's claims: l-SAM is competitive with other surrogate training methods, and adds
to attack-time techniques and to LGV. Every difference is paired by seed."""

from __future__ import annotations

from typing import Any

from flatness.study.chapters.complementarity import LABELS, LGV, PLAIN
from flatness.study.claims import MIN_POINTS, Claim, Comparison

CHAPTER = "complementarity"


def claims(data: dict[str, Any], scale: str) -> list[Claim]:
    return [competitive(data, scale), complements_techniques(data, scale),
            lgv_plus_lsam(data, scale)]


def difference(a: dict[str, Any], b: dict[str, Any]) -> list[float]:
    """Cell ``a`` minus cell ``b`` (mean success over targets), per common seed."""
    sb = dict(zip(b["seeds"], b["seeds_success"], strict=True))
    return [x - sb[s] for s, x in zip(a["seeds"], a["seeds_success"], strict=True) if s in sb]


def competitive(data: dict[str, Any], scale: str) -> Claim:
    methods = data["methods"]
    comparisons = ()
    if "lsam" in methods:
        comparisons = tuple(
            Comparison.paired(f"l-SAM − {LABELS.get(name, name)}",
                              difference(methods["lsam"], methods[name]), +1, floor=MIN_POINTS)
            for name in data["method_order"] if name in methods and name not in {"lsam", "sam"})
    return Claim(CHAPTER, "lsam-competitive",
                 "l-SAM is a surrogate competitive with, or better than, other surrogate "
                 "training methods: fully trained and early-stopped SGD, LGV, SWA, slight "
                 "adversarial training (Table 2).", comparisons, scale)


def _columns(data: dict[str, Any], keep: Any) -> list[str]:
    table = data["table"]
    if "lsam" not in table or "sgd" not in table:
        return []
    return [c for c in data["columns"] if c in table["lsam"] and keep(c)]


def complements_techniques(data: dict[str, Any], scale: str) -> Claim:
    table = data["table"]
    comparisons = tuple(
        Comparison.paired(f"+{column}: l-SAM − SGD",
                          difference(table["lsam"][column], table["sgd"][column]), +1,
                          floor=MIN_POINTS)
        for column in _columns(data, lambda c: c not in (PLAIN, LGV)))
    return Claim(CHAPTER, "lsam-complements-techniques",
                 "l-SAM adds to attack-time transferability techniques (MI, DI, TI, SGM, ghost "
                 "networks, LinBP): with each of them it beats SGD (Table 3).",
                 comparisons, scale)


def lgv_plus_lsam(data: dict[str, Any], scale: str) -> Claim:
    table = data["table"]
    comparisons = tuple(
        Comparison.paired("LGV from l-SAM − LGV from SGD",
                          difference(table["lsam"][column], table["sgd"][column]), +1,
                          floor=MIN_POINTS)
        for column in _columns(data, lambda c: c == LGV))
    return Claim(CHAPTER, "lgv-plus-lsam", "LGV collected along l-SAM beats LGV alone "
                 "(Table 3).", comparisons, scale)


def gains_over_sgd(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """l-SAM minus SGD under each column (plain BIM, each technique, LGV): the mean and std of
    the per-seed differences (for the chapter's bar chart)."""
    from flatness.study.common import paired

    table = data["table"]
    return {column: paired(difference(table["lsam"][column], table["sgd"][column]))
            for column in _columns(data, lambda c: True)}
