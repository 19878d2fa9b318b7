"""The regime map: where, in training-set size, training length and network width, do
surrogates transfer strongly enough to test the paper, and where does flatness help?

A surrogate that transfers weakly makes every comparison of the other chapters unreadable, so
the small scales are chosen by this map. Each *cell* (training-set size, epochs, width) trains
the scale's surrogate recipe, with the paper's schedule shape (decays /10 at 1/3 and 2/3 of
the epochs), under SGD (rho 0) and SAM over a rho grid, for several seeds. Per cell and rho:
training and test accuracy, the mean transfer success of the final epoch on the scale's target
zoo (BIM L-inf), and the top Hessian eigenvalue; for SGD, the transfer curve over checkpoints
gives early stopping's epoch and gain. Every gain of SAM is paired by seed with SGD's (same
initialisation and batch order), against the fully trained and against the early-stopped SGD
surrogate.

A *late-phase* column isolates the mechanism cheaply (Zhou et al., ICLR 2025): SGD's checkpoint
at the last decay is fine-tuned with SAM to the end of the same schedule, at each of the
design's ``late_rhos``; it is compared with SGD and with SAM trained from the start.

Jobs are listed SGD first (every cell, every seed), then SAM rho by rho, then the late-phase
runs, so that an interrupted map has the surrogates' strength everywhere before SAM's gains.

This module is the map's design; its summary and the choice of a regime are
:mod:`flatness.study.analysis.regimes`, its figures :mod:`flatness.plots.regimes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flatness.errors import FlatnessError
from flatness.scales import Scale
from flatness.study.chapter import AnalysisSummary, Chapter
from flatness.study.common import check_seeds, minimizer_params, scale_attack, surrogate
from flatness.study.context import StudySpec
from flatness.study.jobs import Job, SharpnessJob, TransferJob
from flatness.training import TrainConfig


@dataclass(frozen=True)
class Cell:
    """One point of the map: how many training images, for how many epochs, how wide."""

    train_subset: int
    epochs: int
    width: float

    @classmethod
    def parse(cls, value: Any) -> Cell:
        """From ``[train_subset, epochs, width]`` (a notebook or ``-p`` parameter)."""
        if (not isinstance(value, (list, tuple)) or len(value) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in value)):
            raise FlatnessError(f"a cell is [train_subset, epochs, width], got {value!r}")
        size, epochs, width = value
        if int(size) != size or size < 10 or int(epochs) != epochs or epochs < 3 or width <= 0:
            raise FlatnessError(f"cell {value!r}: train_subset must be an integer >= 10, epochs "
                                "an integer >= 3 and width > 0")
        return cls(int(size), int(epochs), float(width))

    @property
    def label(self) -> str:
        return f"{self.train_subset:,} images, {self.epochs} epochs, width {self.width:g}"

    def decay_epochs(self) -> tuple[int, ...]:
        """The paper's shape: /10 after 1/3 and 2/3 of the epochs."""
        return (round(self.epochs / 3), round(2 * self.epochs / 3))

    def checkpoints(self, points: int) -> tuple[int, ...]:
        """About ``points`` checkpoints spread over training, with the decays (late-phase SAM
        starts from the last) and the final epoch."""
        every = max(1, self.epochs // max(1, points))
        return tuple(sorted({*range(every, self.epochs + 1, every), *self.decay_epochs(),
                             self.epochs}))


def defaults(scale: Scale) -> dict[str, Any]:
    design = scale.regimes
    return {
        "cells": [list(c) for c in design.cells],
        "rhos": [float(r) for r in design.rhos],
        "seeds": list(design.seeds),
        "curve_points": design.curve_points,
        "sharpness_images": design.sharpness_images,
        "late_rhos": [float(r) for r in design.late_rhos],
        "eps": scale.eps,
        "attack_steps": scale.attack_steps,
    }


def validate(params: dict[str, Any]) -> None:
    check_seeds(params)
    cells = params["cells"]
    if not isinstance(cells, list) or not cells:
        raise FlatnessError("cells must be a non-empty list of [train_subset, epochs, width]")
    parsed = [Cell.parse(c) for c in cells]
    if len(set(parsed)) != len(parsed):
        raise FlatnessError(f"cells lists a cell twice: {cells!r}")
    rhos = params["rhos"]
    if (not isinstance(rhos, list) or 0.0 not in rhos or len(set(rhos)) != len(rhos)
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0
                       for r in rhos)):
        raise FlatnessError(f"rhos must list distinct numbers >= 0 including 0 (SGD), "
                            f"got {rhos!r}")
    late = params["late_rhos"]
    if (not isinstance(late, list) or len(set(late)) != len(late)
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0
                       for r in late)):
        raise FlatnessError(f"late_rhos must list distinct numbers > 0, got {late!r}")
    for key in ("curve_points", "sharpness_images", "attack_steps"):
        value = params[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise FlatnessError(f"{key} must be an integer >= 1, got {value!r}")
    eps = params["eps"]
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps <= 1:
        raise FlatnessError(f"eps must be a number in (0, 1], got {eps!r}")


def cells(params: dict[str, Any]) -> list[Cell]:
    return [Cell.parse(c) for c in params["cells"]]


def config(scale: Scale, params: dict[str, Any], cell: Cell, rho: float, seed: int
           ) -> TrainConfig:
    """The cell's surrogate: the scale's recipe at the cell's size, SGD or SAM at ``rho``."""
    overrides: dict[str, Any] = {
        "arch": scale.surrogate.arch, "width": cell.width, "depth": scale.surrogate.depth,
        "train_subset": cell.train_subset, "epochs": cell.epochs,
        "decay_epochs": cell.decay_epochs(),
        "checkpoint_epochs": cell.checkpoints(params["curve_points"]) if rho == 0 else (),
    }
    if rho > 0:
        overrides.update(minimizer="sam", minimizer_params=minimizer_params(scale, "sam", rho))
    return surrogate(scale, seed, **overrides)


def late_config(scale: Scale, params: dict[str, Any], cell: Cell, rho: float, seed: int
                ) -> TrainConfig:
    """Late-phase SAM: the seed's SGD run from its last decay on, fine-tuned with SAM."""
    sgd = config(scale, params, cell, 0.0, seed)
    return sgd.branch(cell.decay_epochs()[-1], minimizer="sam",
                      minimizer_params=minimizer_params(scale, "sam", rho), checkpoint_epochs=())


def run_config(scale: Scale, params: dict[str, Any], cell: Cell, rho: float, seed: int,
               late: bool = False) -> TrainConfig:
    """The run behind one entry of the map: SGD or SAM at ``rho`` from the start, or
    late-phase SAM."""
    return (late_config if late else config)(scale, params, cell, rho, seed)


def transfer_job(scale: Scale, params: dict[str, Any], cell: Cell, rho: float, seed: int,
                 late: bool = False) -> TransferJob:
    """SGD: every checkpoint (early stopping); SAM (from the start or late): the final epoch."""
    epochs = cell.checkpoints(params["curve_points"]) if rho == 0 and not late else ()
    return TransferJob(run_config(scale, params, cell, rho, seed, late),
                       scale_attack(scale, params), epochs=epochs)


def sharpness_job(scale: Scale, params: dict[str, Any], cell: Cell, rho: float, seed: int,
                  late: bool = False) -> SharpnessJob:
    """The final checkpoint's top eigenvalue (the trace with the fewest probes: not reported)."""
    return SharpnessJob(run_config(scale, params, cell, rho, seed, late), engine="fast",
                        n_images=params["sharpness_images"],
                        batch_size=min(100, params["sharpness_images"]), trace_samples=2,
                        max_iter=20, trace_method=scale.hessian.trace_method)


def jobs(spec: StudySpec, params: dict[str, Any]) -> list[Job]:
    """SGD everywhere first, then SAM rho by rho, then late-phase SAM (see the docstring)."""
    scale = spec.scale
    columns = [(rho, False) for rho in sorted(params["rhos"])]
    columns += [(rho, True) for rho in params["late_rhos"]]
    return [job for rho, late in columns for cell in cells(params) for seed in params["seeds"]
            for job in (transfer_job(scale, params, cell, rho, seed, late),
                        sharpness_job(scale, params, cell, rho, seed, late))]


CHAPTER = Chapter(
    name="regimes",
    title="The regime map",
    notebook="00_regimes",
    defaults=defaults,
    jobs=jobs,
    summarize=AnalysisSummary("regimes"),
    validate=validate,
    summary_version=2,  # 2: the targets' test accuracy
)
