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


def lr_decay_result(gains: list[float], spread: float = 0.01) -> Result:
    schedules = {"standard": {"best_epoch": 2, "best_success": 0.5, "final_success": 0.4},
                 "constant": {"best_epoch": 3, "best_success": 0.4, "final_success": 0.4}}
    found = [{"schedule": "standard", "decay": 10 * (i + 1), "gain": g, "spread": spread}
             for i, g in enumerate(gains)]
    return Result(kind="chapter", scale="cpu", config={}, seeds=[0, 1],
                  data={"schedules": schedules,
                        "findings": {"decays_followed_by_gain": found}})


def lr_row(result: Result):
    return next(r for r in compare({"lr_decay": result}) if r.chapter.startswith("2."))


def test_peaks_beyond_the_spread_after_every_decay_are_reproduced():
    assert lr_row(lr_decay_result([0.05, 0.03])).status == REPRODUCED


def test_a_gain_within_the_seed_spread_does_not_count():
    assert lr_row(lr_decay_result([0.05, 0.03], spread=0.04)).status == PARTLY
    assert lr_row(lr_decay_result([-0.01, 0.0])).status == NOT_REPRODUCED


def test_missing_chapters_are_not_computed_and_the_table_lists_every_row():
    rows = compare({"lr_decay": lr_decay_result([0.05])})
    assert {r.status for r in rows if not r.chapter.startswith("2.")} == {NOT_COMPUTED}
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "**reproduced**" in table


def robust_result(d_r: float, cifar: float, above: bool, more_robust: bool) -> Result:
    es = {"helps": True, "best_epoch": 4, "gain": 0.05}
    findings = {"surrogates": {"d_r": es}, "targets": {"d_rand": es},
                "accuracy": {"margin": 0.013, "targets": {
                    "d_rand": {"test_acc": 0.2, "above_chance": above},
                    "d_r": {"test_acc": 0.5, "above_chance": True}}},
                "robustness": {"per_eps": [{"eps": 0.25, "d_r": d_r, "cifar10": cifar,
                                            "gain": d_r - cifar, "spread": 0.03,
                                            "more_robust": more_robust}]}}
    return Result(kind="chapter", scale="cpu", config={}, seeds=[0, 1],
                  data={"findings": findings})


def test_ilyas_checks_are_a_row_of_their_own():
    rows = compare({"robust_features": robust_result(0.3, 0.1, True, True)})
    main, check = (r for r in rows if r.chapter.startswith("1."))
    assert main.status == REPRODUCED and check.status == REPRODUCED
    assert "prerequisite" in check.chapter and "0.300 vs CIFAR-10 0.100" in check.ours
    rows = compare({"robust_features": robust_result(0.1, 0.1, True, False)})
    assert [r.status for r in rows if r.chapter.startswith("1.")][1] == PARTLY


def minimizers_result(gain_points: float, spread_points: float) -> Result:
    best = {"label": "SAM rho=0.05", "success": 0.4, "gain_vs_early_stopped_points": gain_points,
            "spread_points": spread_points, "gain_vs_full_points": gain_points + 5}
    return Result(kind="chapter", scale="cpu", config={}, seeds=[0, 1],
                  data={"findings": {"best": best, "large_rho": []}})


def test_a_minimizers_gain_follows_the_chapters_verdict_rule():
    def status(gain: float, spread: float) -> str:
        rows = compare({"minimizers": minimizers_result(gain, spread)})
        return next(r for r in rows if r.chapter == "4. minimizers").status

    assert status(8.0, 5.0) == REPRODUCED
    assert status(3.0, 5.0) == PARTLY  # a gain inside the seed spread
    assert status(-3.0, 5.0) == NOT_REPRODUCED  # below early stopping, even within the spread
