"""Reading the regime map: its job outputs summarised per cell (accuracies, transfer, top
eigenvalue, SGD's early stopping, SAM's seed-paired gains), and which cell is closest to the
paper's regime, by one stated rule.

The paper's surrogates fit their training set and transfer strongly; a small scale is only
worth reading where its surrogates do too. The rule: among the cells whose fully trained SGD
surrogates fit their training set (mean final training accuracy at least :data:`FIT`), take
the one whose SGD surrogates transfer best (mean final success over seeds); if no cell fits,
the one that transfers best, said as such. SAM's gains play no part in the choice, so that
the regime is not picked for the answer it gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flatness.scales import Scale
from flatness.study.chapter import target_accuracy
from flatness.study.chapters import regimes as design
from flatness.study.common import paired, seed_stats
from flatness.study.context import StudyContext
from flatness.study.jobs import TrainJob
from flatness.study.report import zoo_strength

#: Training accuracy (measured on the augmented batches of the last epoch) from which a
#: surrogate counts as fitting its training set.
FIT = 0.9


@dataclass(frozen=True)
class Recommendation:
    """The map's choice of a cell, with the numbers that made it."""

    cell: dict[str, Any]  # train_subset, epochs, width, label
    fits: bool  # whether the chosen cell's SGD surrogates fit their training set
    success: float  # SGD's mean final transfer success there
    train_acc: float
    test_acc: float
    reason: str


def _sgd(cell: dict[str, Any], key: str) -> float | None:
    return cell["rhos"]["0"].get(f"{key}_mean")


def recommend(data: dict[str, Any]) -> Recommendation:
    """The cell the rule of the module docstring picks from a map summary."""
    scored = [c for c in data["cells"] if _sgd(c, "success") is not None]
    if not scored:
        raise ValueError("the map has no cell with a measured SGD success")
    fitting = [c for c in scored if (_sgd(c, "train_acc") or 0.0) >= FIT]
    best = max(fitting or scored, key=lambda c: _sgd(c, "success"))
    success, train, test = (_sgd(best, k) for k in ("success", "train_acc", "test_acc"))
    if fitting:
        others = len(fitting) - 1
        reason = (f"its SGD surrogates fit their training set (training accuracy "
                  f"{100 * train:.1f} % ≥ {100 * FIT:.0f} %) and transfer best of "
                  f"{'the ' + str(len(fitting)) + ' cells that do' if others else 'the map'}")
    else:
        reason = (f"no cell's SGD surrogates fit their training set (training accuracy "
                  f"≥ {100 * FIT:.0f} %): the paper's regime is beyond this map, and this cell "
                  "transfers best")
    return Recommendation(cell=best["cell"], fits=bool(fitting), success=success,
                          train_acc=train, test_acc=test or 0.0, reason=reason)


def recommendation_markdown(data: dict[str, Any], scale_cell: tuple[int | None, int, float]
                            ) -> str:
    """The map's choice, and whether the scale's surrogate recipe ``(train_subset, epochs,
    width)`` is that cell."""
    choice = recommend(data)
    c = choice.cell
    lines = [f"**The map's choice: {c['label']}** — {choice.reason}: SGD's surrogates reach "
             f"{100 * choice.test_acc:.1f} % test accuracy and fool "
             f"{100 * choice.success:.1f} % of the targets{targets_text(data)} on average."]
    def recipe(cell: dict[str, Any]) -> tuple[Any, ...]:
        return cell["train_subset"], cell["epochs"], cell["width"]

    if tuple(scale_cell) == recipe(c):
        lines.append("The scale's surrogate recipe is this cell.")
        return "\n\n".join(lines)
    size, epochs, width = scale_cell
    images = "all" if size is None else f"{size:,}"
    own = f"The scale's surrogate recipe ({images} images, {epochs} epochs, width {width:g})"
    same = next((cell for cell in data["cells"] if recipe(cell["cell"]) == tuple(scale_cell)),
                None)
    if same is None or _sgd(same, "success") is None:
        lines.append(f"{own} is not on the map: its chapters were computed in a regime the map "
                     "does not measure.")
    else:
        train, test, success = (_sgd(same, k) for k in ("train_acc", "test_acc", "success"))
        lines.append(f"{own} is another cell of the map: its SGD surrogates reach "
                     f"{100 * (train or 0):.1f} % training and {100 * (test or 0):.1f} % test "
                     f"accuracy and fool {100 * success:.1f} % of the targets on average.")
    return "\n\n".join(lines)


def targets_text(data: dict[str, Any]) -> str:
    """`` (4 targets, 60.5-74.1 % test accuracy)``: how strong the targets are ("" for a map
    summarised before it recorded their accuracy)."""
    return zoo_strength({"": data.get("target_accuracy") or {}})


# -- the summary: job outputs to per-cell values and seed-paired gains ----------------------
def _last(metrics: list[dict[str, Any]], key: str) -> float | None:
    return metrics[-1].get(key) if metrics else None


def _per_seed(outputs: dict[str, Any], scale: Scale, params: dict[str, Any], cell: design.Cell,
              rho: float, late: bool = False) -> dict[str, list[Any]]:
    """Per seed: final success, accuracies, top eigenvalue (and SGD's transfer curve)."""
    rows: dict[str, list[Any]] = {key: [] for key in (*METRICS, "curve")}
    for seed in params["seeds"]:
        job = design.transfer_job(scale, params, cell, rho, seed, late)
        transfer = outputs[job.key()]
        run = outputs[TrainJob(job.surrogate).key()]
        sharp = outputs[design.sharpness_job(scale, params, cell, rho, seed, late).key()]
        rows["success"].append(transfer["mean"][-1])
        rows["test_acc"].append(_last(run["metrics"], "test_acc"))
        rows["train_acc"].append(_last(run["metrics"], "train_acc"))
        rows["top_eigenvalue"].append(sharp["top_eigenvalue"][-1])
        rows["curve"].append(transfer["mean"])
    return rows


#: The per-seed values each row of a cell holds.
METRICS = ("success", "test_acc", "train_acc", "top_eigenvalue")


def _gain(values: list[float], baseline: list[float]) -> dict[str, Any]:
    """Per-seed differences and their paired statistics."""
    differences = [a - b for a, b in zip(values, baseline)]
    return {"differences": differences, **paired(differences)}


def _mean(values: list[Any]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarize_cell(outputs: dict[str, Any], scale: Scale, params: dict[str, Any], cell: design.Cell
                   ) -> dict[str, Any]:
    """One cell: per rho the per-seed values and means, SGD's early stopping, and SAM's
    seed-paired gains over fully trained and early-stopped SGD; the same for late-phase SAM,
    with its gain over SAM from the start at the same rho (``vs_sam``)."""
    per_rho = {f"{rho:g}": _per_seed(outputs, scale, params, cell, rho)
               for rho in params["rhos"]}
    sgd = per_rho["0"]
    epochs = list(cell.checkpoints(params["curve_points"]))
    curve = seed_stats(sgd["curve"])
    best = int(np.argmax(curve["mean"]))
    early = [c[best] for c in sgd["curve"]]

    def row(values: dict[str, list[Any]], sgd_gains: bool) -> dict[str, Any]:
        out = {k: values[k] for k in METRICS}
        out.update({f"{k}_mean": _mean(values[k]) for k in METRICS})
        if sgd_gains:
            out["vs_full"] = _gain(values["success"], sgd["success"])
            out["vs_early_stopped"] = _gain(values["success"], early)
        return out

    rows = {key: row(values, key != "0") for key, values in per_rho.items()}
    late_rows = {}
    for rho in params["late_rhos"]:
        key = f"{rho:g}"
        late_rows[key] = row(_per_seed(outputs, scale, params, cell, rho, late=True), True)
        if key in per_rho:  # late-phase against SAM from the start at the same rho
            late_rows[key]["vs_sam"] = _gain(late_rows[key]["success"], per_rho[key]["success"])
    return {
        "cell": {"train_subset": cell.train_subset, "epochs": cell.epochs,
                 "width": cell.width, "label": cell.label},
        "decay_epochs": list(cell.decay_epochs()),
        "sgd_curve": {"epochs": epochs, **curve},
        "early_stopping": {"epoch": epochs[best], "success": early,
                           **_gain(early, sgd["success"])},
        "rhos": rows,
        "late_phase": late_rows,
    }


def summarize(ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
              ) -> dict[str, Any]:
    scale = ctx.scale
    first_cell = design.cells(params)[0]
    first = outputs[design.transfer_job(scale, params, first_cell, 0.0, params["seeds"][0]).key()]
    return {
        "targets": first["targets"],
        "n_images": first["n_images"],
        "rhos": [f"{r:g}" for r in params["rhos"]],
        "late_rhos": [f"{r:g}" for r in params["late_rhos"]],
        "seeds": params["seeds"],
        "target_specs": [f"{t.arch}@{t.width:g}" for t in scale.targets],
        "target_accuracy": target_accuracy(outputs, scale),
        "cells": [summarize_cell(outputs, scale, params, cell) for cell in design.cells(params)],
    }
