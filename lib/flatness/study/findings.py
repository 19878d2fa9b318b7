"""The paper's findings beside ours, finding by finding (the book's results page).

Each function reads one chapter's result (``None`` when it was not computed) and returns a
:class:`Finding`: the paper's claim with its numbers, ours, and a status computed from the
chapter's own findings block: ``reproduced``, ``partly``, ``not reproduced`` or
``not computed``. Statuses at ``smoke`` scale are reported but carry no scientific claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flatness.results import Result
from flatness.study.report import beyond_spread

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_COMPUTED = (
    "reproduced", "partly", "not reproduced", "not computed")


@dataclass(frozen=True)
class Finding:
    """One row of the comparison."""

    chapter: str
    paper: str
    status: str
    ours: str
    scale: str = "-"


def _status(hits: int, total: int) -> str:
    if total == 0:
        return NOT_COMPUTED
    if hits == total:
        return REPRODUCED
    return PARTLY if hits else NOT_REPRODUCED


def _gain_status(gain: float | None, spread: float) -> str:
    """A claimed gain's status, by the chapters' verdict rule (:func:`report.beyond_spread`):
    beyond the seed spread reproduced, positive within it partly, none not reproduced."""
    if gain is None:
        return NOT_COMPUTED
    return {True: REPRODUCED, None: PARTLY, False: NOT_REPRODUCED}[beyond_spread(gain, spread)]


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} pts"


def robust_features(r: Result) -> list[Finding]:
    return [_early_stopping_on_features(r), *_ilyas_checks(r)]


def _ilyas_checks(r: Result) -> list[Finding]:
    """The datasets do what Ilyas et al. say (a prerequisite of chapter 1, not the paper's
    own finding): D_rand/D_det models beat chance on CIFAR-10, D_R makes robust models."""
    f = r.data["findings"]
    parts, hits, total = [], 0, 0
    for name, t in f["accuracy"]["targets"].items():
        if name in ("d_rand", "d_det") and t["above_chance"] is not None:
            total += 1
            hits += bool(t["above_chance"])
            parts.append(f"trained on {name}: CIFAR-10 test accuracy {t['test_acc']:.3f} "
                         f"(chance 0.10 + {f['accuracy']['margin']:.3f})")
    check = f.get("robustness")
    for b in (check or {}).get("per_eps", []):
        total += 1
        hits += bool(b["more_robust"])
        parts.append(f"L2 eps {b['eps']:g} accuracy of surrogates trained on D_R "
                     f"{b['d_r']:.3f} vs CIFAR-10 {b['cifar10']:.3f} "
                     f"({_pts(b['gain'])}, spread {100 * b['spread']:.1f})")
    if not total:
        return []
    return [Finding("1. (prerequisite) Ilyas et al.'s datasets",
                    "Not the paper's finding but its premise: models trained on D_rand/D_det "
                    "beat chance on CIFAR-10; models trained on D_R resist small L2 attacks.",
                    _status(hits, total), "; ".join(parts), r.scale)]


def _early_stopping_on_features(r: Result) -> Finding:
    f = r.data["findings"]
    cases = {**{f"surrogate on {k}": v for k, v in f["surrogates"].items()},
             **{f"target on {k}": v for k, v in f["targets"].items()}}
    hits = sum(bool(v["helps"]) for v in cases.values())
    ours = "; ".join(f"{k}: best epoch {v['best_epoch']} vs final {_pts(v['gain'])}"
                     for k, v in cases.items())
    return Finding("1. robust vs non-robust features",
                   "Early stopping helps transferability for surrogates trained on D_R and D_NR "
                   "and towards targets trained on D_R, D_NR, D_rand, D_det (Figs. 2-3).",
                   _status(hits, len(cases)), f"early stopping helps in {hits}/{len(cases)} "
                   f"cases ({ours})", r.scale)


def lr_decay(r: Result) -> Finding:
    f = r.data["findings"]
    gains = [g for g in f["decays_followed_by_gain"] if g.get("gain") is not None]
    schedules = r.data["schedules"]
    hits = 0
    parts = []
    for g in gains:
        hits += beyond_spread(g["gain"], g["spread"]) is True
        parts.append(f"{g['schedule']} decay@{g['decay']}: {_pts(g['gain'])} "
                     f"(spread {100 * g['spread']:.1f})")
    constant = schedules.get("constant")
    extra = ""
    if constant:
        extra = (f"; constant lr: best epoch {constant['best_epoch']}, best - final "
                 f"{_pts(constant['best_success'] - constant['final_success'])}")
    return Finding("2. learning-rate decay",
                   "Transferability peaks a few epochs after the learning rate decays, at any "
                   "decay epoch; no peak with a constant learning rate (Fig. 4).",
                   _status(hits, len(gains)),
                   f"a peak follows {hits}/{len(gains)} decays ({'; '.join(parts)}){extra}",
                   r.scale)


def sharpness(r: Result) -> Finding:
    f = r.data["findings"]
    drops = [d for m in ("top_eigenvalue", "trace") for d in f["drops"][m]
             if d.get("relative") is not None]
    hits = sum(d["relative"] < 0 for d in drops)
    parts = [f"{m} at decay {d['decay']}: {100 * d['relative']:+.0f} %"
             for m in ("top_eigenvalue", "trace") for d in f["drops"][m]
             if d.get("relative") is not None]
    return Finding("3. sharpness",
                   "The Hessian's largest eigenvalue and trace drop when the learning rate "
                   "decays, then SGD falls into sharper regions as transferability declines "
                   "(Fig. 5).", _status(hits, len(drops)),
                   f"sharpness drops at {hits}/{len(drops)} decays ({'; '.join(parts)})", r.scale)


def minimizers(r: Result) -> list[Finding]:
    f = r.data["findings"]
    rows = []
    best = f.get("best")
    if best is None:
        rows.append(Finding("4. minimizers", "SAM beats early stopping by up to +28.8 points.",
                            NOT_COMPUTED, "no minimizer other than SGD was run", r.scale))
    else:
        gain = best["gain_vs_early_stopped_points"]
        rows.append(Finding(
            "4. minimizers", "Sharpness-aware minimizers beat early-stopped SGD; SAM by up to "
            "+28.8 points.", _gain_status(gain, best["spread_points"]),
            f"best: {best['label']} at {100 * best['success']:.1f} %, {gain:+.1f} pts over "
            f"early-stopped SGD (spread {best['spread_points']:.1f}), "
            f"{best['gain_vs_full_points']:+.1f} pts over fully trained SGD", r.scale))
    large = f.get("large_rho", [])
    best_large = sum(x["largest_is_best"] for x in large)
    costs = [x for x in large if x["accuracy_cost_points"] is not None]
    cost_hits = sum(x["accuracy_cost_points"] > 0 for x in costs)
    ours = "; ".join(_rho_sweep(x) for x in large) or "no rho sweep was run"
    if costs:
        ours += f" (accuracy cost in {cost_hits}/{len(costs)})"
    rows.append(Finding(
        "4. minimizers (l-SAM)", "Large neighbourhoods (l-SAM) transfer best while often "
        "costing natural accuracy.", _status(best_large, len(large)), ours, r.scale))
    return rows


def _rho_sweep(x: dict[str, Any]) -> str:
    cost = x["accuracy_cost_points"]
    return (f"{x['minimizer']}: best rho {x['best_rho']:g} of {x['smallest_rho']:g}-"
            f"{x['largest_rho']:g}, largest vs smallest rho {x['success_gain_points']:+.1f} pts "
            f"success, {'n/a' if cost is None else f'{cost:+.1f}'} pts accuracy cost")


def complementarity(r: Result) -> list[Finding]:
    f = r.data["findings"]
    competitive = f.get("competitive", {})
    hits = sum(bool(v["competitive"]) for v in competitive.values())
    rows = [Finding(
        "5. complementarity", "The best minimizers are competitive with other surrogate "
        "training methods (LGV, SAT, SWA, early stopping).", _status(hits, len(competitive)),
        "; ".join(f"l-SAM vs {k}: {_pts(v['diff'])}" for k, v in competitive.items())
        or "not computed", r.scale)]
    n = f.get("n_combined", 0)
    rows.append(Finding(
        "5. complementarity (techniques)", "l-SAM adds to attack-time techniques (MI, DI, TI, "
        "SGM, GN, LinBP) and to LGV.", _status(f.get("n_complemented", 0), n),
        "; ".join(f"+{k}: {_pts(v['diff'])}" for k, v in f.get("gain_over_sgd", {}).items())
        or "not computed", r.scale))
    lgv = f.get("lgv_lsam_vs_lgv")
    rows.append(Finding(
        "5. complementarity (LGV + l-SAM)", "LGV + l-SAM beats LGV alone.",
        NOT_COMPUTED if lgv is None else _gain_status(lgv["diff"], lgv["spread"]),
        "not computed" if lgv is None else f"{_pts(lgv['diff'])} (spread {_pts(lgv['spread'])})",
        r.scale))
    return rows


COMPARISONS: dict[str, Callable[[Result], Finding | list[Finding]]] = {
    "robust_features": robust_features,
    "lr_decay": lr_decay,
    "sharpness": sharpness,
    "minimizers": minimizers,
    "complementarity": complementarity,
}


def compare(results: dict[str, Result | None]) -> list[Finding]:
    """Every finding, in book order; chapters without a result give ``not computed`` rows."""
    rows: list[Finding] = []
    for name, fn in COMPARISONS.items():
        result = results.get(name)
        if result is None:
            rows.append(Finding(name, "(see the chapter)", NOT_COMPUTED, "no result", "-"))
            continue
        found = fn(result)
        rows.extend(found if isinstance(found, list) else [found])
    return rows


def markdown_table(rows: list[Finding]) -> str:
    """The comparison as a MyST table."""
    lines = ["| chapter | the paper | status | this study | scale |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [row.chapter, row.paper, f"**{row.status}**", row.ours, f"`{row.scale}`"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def load_results(loader: Callable[[str], Result | None]) -> dict[str, Any]:
    """``{chapter: result or None}`` using ``loader(chapter)``."""
    return {name: loader(name) for name in COMPARISONS}
