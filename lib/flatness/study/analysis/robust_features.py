"""Chapter 1's claims: early stopping helps whatever features the surrogate or the target
learned (the paper's finding), and Ilyas et al.'s datasets do what they should (its premise)."""

from __future__ import annotations

from typing import Any

from flatness.study.analysis.paired import from_entry
from flatness.study.chapters.robust_features import LABELS
from flatness.study.claims import MIN_POINTS, Claim, Comparison

CHAPTER = "robust_features"


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
