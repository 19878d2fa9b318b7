"""Chapter 4's analysis: the summary of its job outputs (both SGD baselines, every surrogate's
seed statistics, the ranking, l-SAM) and the paper's claims from it: sharpness-aware minimizers
beat fully trained and early-stopped SGD; a large neighbourhood transfers best, often at a cost
in natural accuracy; flatter surrogates transfer better. Every difference is paired by seed
(surrogates sharing a seed share their initialisation and batch order)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flatness.errors import FlatnessError
from flatness.study.analysis.sharpness import spearman
from flatness.study.chapters import minimizers as design
from flatness.study.claims import MIN_POINTS, Claim, Comparison
from flatness.study.common import seed_stats
from flatness.study.context import StudyContext

CHAPTER = "minimizers"
#: The paper's best gain of SAM over early-stopped SGD, in success-rate points.
PAPER_GAIN_POINTS = 28.8

#: The two SGD baselines, as the summary and its figures label them.
ES, FULL = "SGD (early stopped)", "SGD (fully trained)"


# -- the summary ------------------------------------------------------------------------------
def _row(output: dict[str, Any], epoch: int) -> int:
    if epoch not in output["epochs"]:
        raise FlatnessError(f"transfer output of run {output.get('run')} has no epoch {epoch}")
    return output["epochs"].index(epoch)


def _stats(values: list[Any]) -> tuple[Any, Any]:
    s = seed_stats(values)
    return s["mean"], s["std"]


def _entry(name: str, rho: float | None, seeds: list[int], per_seed: list[dict[str, Any]]
           ) -> dict[str, Any]:
    """Seed statistics of one surrogate from per-seed rows (success per target, accuracy,
    sharpness)."""
    success, success_std = _stats([r["mean"] for r in per_seed])
    per_target, per_target_std = _stats([r["success"] for r in per_seed])
    acc = [r["test_acc"] for r in per_seed]
    acc_mean, acc_std = _stats(acc) if None not in acc else (None, None)
    entry = {"minimizer": name, "rho": rho, "seeds": seeds,
             "per_seed": {"seeds": seeds, "success": [r["mean"] for r in per_seed],
                          **{key: [r.get(key) for r in per_seed]
                             for key in ("test_acc", "top_eigenvalue", "trace")}},
             "success_mean": success, "success_std": success_std,
             "per_target_mean": per_target, "per_target_std": per_target_std,
             "test_acc_mean": acc_mean, "test_acc_std": acc_std}
    for key in ("top_eigenvalue", "trace"):
        values = [r.get(key) for r in per_seed]
        mean, std = _stats(values) if None not in values else (None, None)
        entry[f"{key}_mean"], entry[f"{key}_std"] = mean, std
    return entry


def _transfer_row(output: dict[str, Any], epoch: int) -> dict[str, Any]:
    i = _row(output, epoch)
    return {"mean": output["mean"][i], "success": output["success"][i],
            "test_acc": output["test_acc"][i]}


def _sharpness_row(output: dict[str, Any] | None, epoch: int) -> dict[str, Any]:
    if output is None or epoch not in output["epochs"]:
        return {}
    i = output["epochs"].index(epoch)
    return {"top_eigenvalue": output["top_eigenvalue"][i], "trace": output["trace"][i]}


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    sgd_seeds = design.seeds_for(params, "sgd")  # early-stopped SGD is SGD: its seeds
    curves = [outputs[design.curve_job(scale, params, seed).key()] for seed in sgd_seeds]
    targets = curves[0]["targets"]
    epochs = curves[0]["epochs"]
    curve_mean, curve_std = _stats([c["mean"] for c in curves])
    best_i = int(np.argmax(curve_mean))
    es_rows = [_transfer_row(c, epochs[best_i]) for c in curves]
    if params["sharpness"]:
        for row, seed in zip(es_rows, sgd_seeds, strict=True):
            row.update(_sharpness_row(
                outputs.get(design.sharpness_job(scale, params, "sgd", None, seed).key()),
                epochs[best_i]))
    early = _entry("sgd", None, sgd_seeds, es_rows)
    early.update(epoch=epochs[best_i], label=ES)

    surrogates: dict[str, dict[str, Any]] = {}
    for name, rho in design.variants(params):
        seeds = design.seeds_for(params, name)
        rows = []
        for seed in seeds:
            row = _transfer_row(outputs[design.final_job(scale, params, name, rho, seed).key()],
                                scale.epochs)
            if params["sharpness"]:
                row.update(_sharpness_row(
                    outputs.get(design.sharpness_job(scale, params, name, rho, seed).key()),
                    scale.epochs))
            rows.append(row)
        surrogates[design.label(name, rho)] = _entry(name, rho, seeds, rows)
    full = dict(surrogates[design.label("sgd", None)], label=FULL)

    for entry in surrogates.values():
        entry["gain_vs_early_stopped_points"] = 100 * (entry["success_mean"]
                                                       - early["success_mean"])
        entry["gain_vs_full_points"] = 100 * (entry["success_mean"] - full["success_mean"])
    ranking = sorted([*((k, v["success_mean"]) for k, v in surrogates.items() if k != "sgd"),
                      (FULL, full["success_mean"]), (ES, early["success_mean"])],
                     key=lambda kv: -kv[1])
    sam = [rho for name, rho in design.variants(params) if name == "sam"]
    lsam = None
    if sam:
        rho = max(sam)
        lsam = {"rho": rho, "label": design.label("sam", rho),
                **surrogates[design.label("sam", rho)]}
    return {
        "targets": targets,
        "epochs": scale.epochs,
        "decay_epochs": list(scale.decay_epochs),
        "sgd_curve": {"epochs": epochs, "success_mean": curve_mean, "success_std": curve_std},
        "early_stopped": early,
        "fully_trained": full,
        "surrogates": surrogates,
        "minimizers": {name: [design.label(name, r) for r in design.rho_grid(params, name)]
                       for name in dict.fromkeys(n for n, _ in design.variants(params))},
        "lsam": lsam,
        "ranking": [k for k, _ in ranking],
    }


# -- the claims -------------------------------------------------------------------------------
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
