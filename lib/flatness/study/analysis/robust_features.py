"""Chapter 1's analysis: the summary of its job outputs (every surrogate's and every target's
transfer curve and early-stopping gain, the derived datasets, the targets' accuracy, the
surrogates' L2 robustness) and the paper's claims from it: early stopping helps whatever
features the surrogate or the target learned (the paper's finding), and Ilyas et al.'s datasets
do what they should (its premise)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from flatness.study.analysis.paired import from_entry
from flatness.study.chapters import robust_features as design
from flatness.study.chapters.robust_features import LABELS
from flatness.study.claims import MIN_POINTS, Claim, Comparison
from flatness.study.common import paired, seed_stats
from flatness.study.context import StudyContext
from flatness.study.jobs import DatasetJob

CHAPTER = "robust_features"
#: CIFAR-10's classes: a chance-level accuracy is one in ten.
NUM_CLASSES = 10


# -- the summary ------------------------------------------------------------------------------
def early_stopping_gain(epochs: list[int], per_seed: list[list[float]]) -> dict[str, Any]:
    """Best epoch (by mean success over seeds) against the final epoch, paired by seed.

    ``differences`` are the per-seed gains (the claim's comparison, :func:`early_stopping`);
    ``spread`` is 2 std of them (``MIN_SPREAD`` with one seed), drawn as the band.
    """
    values = np.asarray(per_seed, dtype=float)  # seeds x epochs
    mean = values.mean(axis=0)
    best = int(np.argmax(mean))
    per_seed = values[:, best] - values[:, -1]
    diff = paired(per_seed)
    return {"best_epoch": int(epochs[best]), "best_success": float(mean[best]),
            "final_epoch": int(epochs[-1]), "final_success": float(mean[-1]),
            "gain": diff["mean"], "spread": diff["spread"], "differences": per_seed.tolist()}


def _curves(runs: list[dict[str, Any]]) -> dict[str, Any]:
    success = seed_stats([r["mean"] for r in runs])
    per_target = seed_stats([r["success"] for r in runs])  # epochs x targets
    accuracy = seed_stats([[np.nan if a is None else a for a in r["test_acc"]] for r in runs])
    return {
        "targets": runs[0]["targets"],
        "n_images": runs[0]["n_images"],
        "epochs": runs[0]["epochs"],
        "success_mean": success["mean"],
        "success_std": success["std"],
        "per_target_mean": per_target["mean"],
        "per_target_std": per_target["std"],
        "test_acc_mean": accuracy["mean"],
        "early_stopping": early_stopping_gain(runs[0]["epochs"], [r["mean"] for r in runs]),
    }


def robustness_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Clean and L2-robust accuracy of one training set's surrogates, over seeds."""
    robust = seed_stats([r["robust"] for r in per_seed])
    clean = seed_stats([[r["clean"]] for r in per_seed])
    return {"eps": per_seed[0]["eps"], "n_images": per_seed[0]["n_images"],
            "clean_mean": clean["mean"][0], "clean_std": clean["std"][0],
            "robust_mean": robust["mean"], "robust_std": robust["std"],
            "robust": [r["robust"] for r in per_seed]}


def robustness_check(robustness: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Ilyas et al.'s check, per L2 budget: D_R-trained surrogates' robust accuracy against
    CIFAR-10-trained ones', paired by seed (mean gain and its band: 2 std of the paired
    differences, at least two binomial standard errors). Whether it counts is the claim's
    rule (:func:`premise`)."""
    if "d_r" not in robustness or design.CIFAR10 not in robustness:
        return None
    d_r, cifar = robustness["d_r"], robustness[design.CIFAR10]
    per_eps = []
    for i, eps in enumerate(d_r["eps"]):
        diffs = np.asarray([a[i] - b[i] for a, b in zip(d_r["robust"], cifar["robust"],
                                                          strict=True)])
        p = min(max(cifar["robust_mean"][i], 0.05), 0.95)
        binomial = 2 * math.sqrt(2 * p * (1 - p) / d_r["n_images"])
        spread = max(2 * float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0, binomial)
        gain = float(diffs.mean())
        per_eps.append({"eps": eps, "d_r": d_r["robust_mean"][i],
                        "cifar10": cifar["robust_mean"][i], "gain": gain, "spread": spread,
                        "differences": diffs.tolist()})
    return {"per_eps": per_eps,
            "clean": {"d_r": d_r["clean_mean"], "cifar10": cifar["clean_mean"]}}


def chance_margin(n_eval: int) -> float:
    """Two binomial standard errors of a chance-level accuracy on ``n_eval`` images."""
    p = 1 / NUM_CLASSES
    return 2 * math.sqrt(p * (1 - p) / max(n_eval, 1))


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    seeds = params["seeds"]
    surrogates = {d: {"seeds": seeds, **_curves(
        [outputs[design.fig2_job(scale, params, d, s).key()] for s in seeds])}
        for d in params["surrogate_datasets"]}
    towards = {t: {"seeds": seeds, "eps": float(params["target_eps"][t]), **_curves(
        [outputs[design.fig3_job(scale, params, t, s).key()] for s in seeds])}
        for t in params["target_datasets"]}

    n_eval = scale.eval_subset or 10_000
    margin = chance_margin(n_eval)
    target_acc = {}
    for t in params["target_datasets"]:
        metrics = outputs[design.target_job(scale, t).key()]["metrics"]
        acc = metrics[-1]["test_acc"] if metrics else None
        target_acc[t] = {"test_acc": acc, "epochs": len(metrics)}
    datasets = {k: outputs[DatasetJob(design.dataset_name(k, scale)).key()]
                for k in design.used_datasets(params)}

    robustness = {d: robustness_summary([outputs[design.robustness_job(scale, params, d, s).key()]
                                         for s in seeds])
                  for d in params["surrogate_datasets"]}

    findings = {
        "surrogates": {d: s["early_stopping"] for d, s in surrogates.items()},
        "robustness": robustness_check(robustness),
        "targets": {t: s["early_stopping"] for t, s in towards.items()},
        "accuracy": {"chance": 1 / NUM_CLASSES, "margin": margin, "n_eval": n_eval,
                     "targets": target_acc},
    }
    return {
        "surrogates": surrogates,
        "towards_targets": towards,
        "target_arch": f"{scale.surrogate.arch}@{scale.surrogate.width:g}",
        "surrogate_accuracy": {d: {"mean": s["test_acc_mean"][-1]} for d, s in
                               surrogates.items()},
        "datasets": datasets,
        "robustness": robustness,
        "decay_epochs": list(scale.decay_epochs),
        "epochs": scale.epochs,
        "findings": findings,
    }


# -- the claims -------------------------------------------------------------------------------
def claims(data: dict[str, Any], scale: str) -> list[Claim]:
    return [early_stopping(data, scale), premise(data, scale)]


def early_stopping(data: dict[str, Any], scale: str) -> Claim:
    """Best epoch minus final epoch, per seed, for each surrogate and each target dataset."""
    f = data["findings"]
    comparisons = []
    for kind, cases, where in (("surrogate", f["surrogates"], data["surrogates"]),
                               ("target", f["targets"], data["towards_targets"])):
        for name, es in cases.items():
            comparisons.append(from_entry(
                f"{kind} on {LABELS.get(name, name)}: best epoch {es['best_epoch']} − final",
                es, len(where[name]["seeds"]), +1, floor=MIN_POINTS))
    return Claim(CHAPTER, "early-stopping-whatever-the-features",
                 "Early stopping helps transferability for surrogates trained on robust (D_R) "
                 "and non-robust (D_NR) features, and towards targets trained on D_R, D_NR, "
                 "D_rand and D_det (Figs. 2-3): robust features do not explain it.",
                 tuple(comparisons), scale)


def premise(data: dict[str, Any], scale: str) -> Claim:
    """Models trained on D_rand / D_det beat chance on CIFAR-10; D_R makes L2-robust models."""
    f = data["findings"]
    acc = f["accuracy"]
    comparisons = [
        Comparison.proportion(f"target trained on {LABELS[name]}: CIFAR-10 accuracy − chance",
                              acc["targets"][name]["test_acc"], acc["chance"], acc["n_eval"],
                              +1, floor=MIN_POINTS)
        for name in ("d_rand", "d_det") if name in acc["targets"]]
    robustness = data.get("robustness", {})
    if "d_r" in robustness and "cifar10" in robustness:
        d_r, cifar = robustness["d_r"], robustness["cifar10"]
        for i, eps in enumerate(d_r["eps"]):
            comparisons.append(Comparison.paired(
                f"L2 eps {eps:g} accuracy, surrogate on D_R − on CIFAR-10",
                [a[i] - b[i] for a, b in zip(d_r["robust"], cifar["robust"], strict=True)],
                +1, floor=MIN_POINTS))
    return Claim(CHAPTER, "ilyas-datasets",
                 "Ilyas et al.'s datasets behave as theirs: models trained on D_rand and D_det "
                 "classify CIFAR-10 above chance; models trained on D_R resist small L2 attacks "
                 "better than models trained on CIFAR-10.",
                 tuple(comparisons), scale, prerequisite=True)
