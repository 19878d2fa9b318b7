"""Chapter 5's analysis: the summary of its job outputs (every cell's success over seeds:
Part A's methods under plain BIM, Part B's surrogates under each technique) and the paper's
claims from it: l-SAM is competitive with other surrogate training methods, and adds to
attack-time techniques and to LGV. Every difference is paired by seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapters import complementarity as design
from flatness.study.chapters.complementarity import LABELS, LGV, PLAIN
from flatness.study.claims import MIN_POINTS, Claim, Comparison
from flatness.study.common import paired, seed_stats
from flatness.study.context import StudyContext

CHAPTER = "complementarity"


# -- the summary ------------------------------------------------------------------------------
def _row_at(output: dict[str, Any], epoch: int) -> int:
    if epoch not in output["epochs"]:
        raise FlatnessError(f"transfer output has no epoch {epoch} (has {output['epochs']})")
    return output["epochs"].index(epoch)


def early_stopping_epoch(curves: list[dict[str, Any]]) -> int:
    """The checkpoint with the best success rate averaged over seeds (the paper's oracle)."""
    mean = np.mean([c["mean"] for c in curves], axis=0)
    return int(curves[0]["epochs"][int(np.argmax(mean))])


def _cell_outputs(scale: Scale, params: dict[str, Any], outputs: dict[str, Any], row: str,
                  column: str, early_epoch: int | None) -> dict[str, Any]:
    """Per-seed success (mean and per target) and accuracy of one cell."""
    means, per_target, accuracy = [], [], []
    seeds = design.seeds_for(row, params)
    for seed in seeds:
        job = design.cell_job(scale, params, row, column, seed)
        out = outputs[job.key()]
        i = -1
        if job.epochs:  # the early-stopping curve
            i = _row_at(out, early_epoch if row == "early_stopped" else scale.epochs)
        means.append(out["mean"][i])
        per_target.append(out["success"][i])
        accuracy.append(out["test_acc"][i])
    success = seed_stats(means)
    targets = seed_stats(per_target)
    acc = [a for a in accuracy if a is not None]
    return {"seeds": seeds, "seeds_success": means, "mean": success["mean"], "std": success["std"],
            "per_target_mean": targets["mean"], "per_target_std": targets["std"],
            "test_acc": float(np.mean(acc)) if acc else None}


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    targets: list[str] = []
    early_epoch = None
    if "early_stopped" in params["methods"]:
        curves = [outputs[design.curve_job(scale, params, s).key()] for s in params["seeds"]]
        early_epoch = early_stopping_epoch(curves)

    def cell(row: str, column: str) -> dict[str, Any]:
        return _cell_outputs(scale, params, outputs, row, column, early_epoch)

    row, column = design.cells(params)[0]
    first = design.cell_job(scale, params, row, column, design.seeds_for(row, params)[0])
    targets = outputs[first.key()]["targets"]
    methods = {m: cell(m, PLAIN) for m in params["methods"]}
    cols = design.columns(params)
    table = {r: {c: cell(r, c) for c in cols} for r in params["surrogates"]}
    return {
        "targets": targets,
        "early_stopping_epoch": early_epoch,
        "methods": methods,
        "method_order": list(params["methods"]),  # JSON objects lose their key order
        "surrogate_order": list(params["surrogates"]),
        "columns": cols,
        "table": table,
    }


# -- the claims -------------------------------------------------------------------------------
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
    table = data["table"]
    return {column: paired(difference(table["lsam"][column], table["sgd"][column]))
            for column in _columns(data, lambda c: True)}
