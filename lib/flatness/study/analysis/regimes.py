"""Reading the regime map: which cell is closest to the paper's regime, by one stated rule.

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
             f"{100 * choice.success:.1f} % of the targets on average."]
    if tuple(scale_cell) == (c["train_subset"], c["epochs"], c["width"]):
        lines.append("The scale's surrogate recipe is this cell.")
    else:
        size, epochs, width = scale_cell
        lines.append(f"The scale's surrogate recipe ({size or 'all'} images, {epochs} epochs, "
                     f"width {width:g}) is not this cell: its chapters were computed elsewhere "
                     "on the map, and read in another regime.")
    return "\n\n".join(lines)
