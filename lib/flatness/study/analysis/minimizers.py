"""Chapter 4's claims: sharpness-aware minimizers beat fully trained and early-stopped SGD;
a large neighbourhood transfers best, often at a cost in natural accuracy; flatter surrogates
transfer better. Every difference is paired by seed (surrogates sharing a seed share their
initialisation and batch order)."""

from __future__ import annotations

from typing import Any

from flatness.errors import FlatnessError
from flatness.study.claims import MIN_POINTS, Claim, Comparison

CHAPTER = "minimizers"
#: The paper's best gain of SAM over early-stopped SGD, in success-rate points.
PAPER_GAIN_POINTS = 28.8


def claims(data: dict[str, Any], scale: str) -> list[Claim]:
    best = best_per_minimizer(data)
    return [beats(data, scale, best, data["early_stopped"], "early-stopped"),
            beats(data, scale, best, data["fully_trained"], "fully-trained"),
            large_rho_transfers_best(data, scale), large_rho_costs_accuracy(data, scale),
            flatter_transfers_better(data, scale)]


def per_seed(entry: dict[str, Any], key: str) -> dict[int, float | None]:
    """``{seed: value}`` of one surrogate's per-seed ``key`` (success, test_acc, ...)."""
    if "per_seed" not in entry:
        raise FlatnessError("this chapter 4 summary has no per-seed values (an older format); "
                            "recompute it")
    rows = entry["per_seed"]
    return dict(zip(rows["seeds"], rows[key], strict=True))


def differences(a: dict[str, Any], b: dict[str, Any], key: str = "success"
                ) -> list[float | None]:
    """``a - b`` per common seed."""
    va, vb = per_seed(a, key), per_seed(b, key)
    return [None if va[s] is None or vb[s] is None else va[s] - vb[s] for s in va if s in vb]


def best_per_minimizer(data: dict[str, Any]) -> dict[str, str]:
    """Each minimizer other than SGD: its surrogate (rho) with the best mean success, as the
    paper reports each minimizer at its best rho (early stopping gets its best epoch)."""
    best: dict[str, str] = {}
    for name, keys in data["minimizers"].items():
        if name != "sgd":
            best[name] = max(keys, key=lambda k: data["surrogates"][k]["success_mean"])
    return best


def beats(data: dict[str, Any], scale: str, best: dict[str, str], baseline: dict[str, Any],
          which: str) -> Claim:
    comparisons = tuple(
        Comparison.paired(f"{key} − {baseline['label']}",
                          differences(data["surrogates"][key], baseline), +1, floor=MIN_POINTS)
        for key in best.values())
    paper = ("Sharpness-aware minimizers transfer better than early-stopped SGD (SAM by up to "
             f"+{PAPER_GAIN_POINTS} points; Table 1)." if which == "early-stopped" else
             "Sharpness-aware minimizers transfer better than fully trained SGD (Table 1).")
    return Claim(CHAPTER, f"minimizers-beat-{which}-sgd", paper, comparisons, scale,
                 note="Each minimizer at the rho of its best mean success.")


def _grids(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Minimizers with at least two rhos: their (smallest, largest) rho surrogates."""
    grids = {}
    for name, keys in data["minimizers"].items():
        ranked = sorted((data["surrogates"][k]["rho"], k) for k in keys
                        if data["surrogates"][k]["rho"] is not None)
        if len(ranked) >= 2:
            grids[name] = (ranked[0][1], ranked[-1][1])
    return grids


def large_rho_transfers_best(data: dict[str, Any], scale: str) -> Claim:
    comparisons = tuple(
        Comparison.paired(f"{large} − {small}", differences(
            data["surrogates"][large], data["surrogates"][small]), +1, floor=MIN_POINTS)
        for small, large in _grids(data).values())
    return Claim(CHAPTER, "large-rho-transfers-best",
                 "A large neighbourhood (l-SAM: SAM with a large rho) transfers better than the "
                 "standard one (Fig. 8).", comparisons, scale)


def large_rho_costs_accuracy(data: dict[str, Any], scale: str) -> Claim:
    comparisons = tuple(
        Comparison.paired(f"test accuracy {small} − {large}", differences(
            data["surrogates"][small], data["surrogates"][large], "test_acc"), +1,
            floor=MIN_POINTS)
        for small, large in _grids(data).values())
    return Claim(CHAPTER, "large-rho-costs-accuracy",
                 "A large neighbourhood often costs natural accuracy: l-SAM surrogates are "
                 "worse classifiers that make better surrogates.", comparisons, scale)


def flatter_transfers_better(data: dict[str, Any], scale: str) -> Claim:
    """Per seed: Spearman correlation, over every surrogate of that seed (early-stopped SGD
    included), of final sharpness with mean success."""
    from flatness.study.chapters.sharpness import spearman

    entries = [*data["surrogates"].values(), data["early_stopped"]]
    seeds = sorted({s for e in entries for s in e.get("per_seed", {}).get("seeds", [])})
    comparisons = []
    for key, label in (("top_eigenvalue", "top eigenvalue"), ("trace", "trace")):
        rhos = []
        for seed in seeds:
            pairs = [(per_seed(e, key).get(seed), per_seed(e, "success").get(seed))
                     for e in entries if seed in e["per_seed"]["seeds"]]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            rhos.append(spearman(*zip(*pairs)) if len(pairs) >= 3 else None)
        comparisons.append(Comparison.paired(f"Spearman({label}, success) over surrogates",
                                             rhos, -1, unit="", scale=1.0))
    return Claim(CHAPTER, "flatter-transfers-better",
                 "Flatter surrogates (lower Hessian eigenvalue and trace) transfer better.",
                 tuple(comparisons), scale)
