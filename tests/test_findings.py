"""The results page's comparison: statuses are computed from the chapters' own findings."""

from __future__ import annotations

from flatness.results import Result
from flatness.study.findings import (
    NOT_COMPUTED,
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    compare,
    markdown_table,
)


def lr_decay_result(gains: list[float], std: float = 0.0) -> Result:
    schedules = {"standard": {"success_std": [std] * 3, "best_epoch": 2, "best_success": 0.5,
                              "final_success": 0.4},
                 "constant": {"success_std": [std] * 3, "best_epoch": 3, "best_success": 0.4,
                              "final_success": 0.4}}
    found = [{"schedule": "standard", "decay": 10 * (i + 1), "gain": g}
             for i, g in enumerate(gains)]
    return Result(kind="chapter", scale="cpu", config={}, seeds=[0, 1],
                  data={"schedules": schedules,
                        "findings": {"decays_followed_by_gain": found}})


def lr_row(result: Result):
    return next(r for r in compare({"lr_decay": result}) if r.chapter.startswith("2."))


def test_peaks_beyond_the_spread_after_every_decay_are_reproduced():
    assert lr_row(lr_decay_result([0.05, 0.03])).status == REPRODUCED


def test_a_gain_within_the_seed_spread_does_not_count():
    assert lr_row(lr_decay_result([0.05, 0.03], std=0.02)).status == PARTLY  # spread 0.04
    assert lr_row(lr_decay_result([-0.01, 0.0])).status == NOT_REPRODUCED


def test_missing_chapters_are_not_computed_and_the_table_lists_every_row():
    rows = compare({"lr_decay": lr_decay_result([0.05])})
    assert {r.status for r in rows if not r.chapter.startswith("2.")} == {NOT_COMPUTED}
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "**reproduced**" in table
