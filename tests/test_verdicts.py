"""The chapters' verdicts (agrees / disagrees / inconclusive) live in the library, follow one
rule for a claimed gain, and read every committed result."""

from __future__ import annotations

import importlib
import re

import pytest

from flatness.results import read_result
from flatness.study.chapter import RESULT_KIND, results_root
from flatness.study.chapters import chapters
from flatness.study.chapters import complementarity as ch5
from flatness.study.chapters import lr_decay as ch2
from flatness.study.chapters import minimizers as ch4
from flatness.study.report import beyond_spread

LINE = re.compile(r"^- \*\*(agrees|disagrees|inconclusive)\*\*: .+ \(.+\)$")


@pytest.mark.parametrize(("gain", "spread", "expected"), [
    (0.05, 0.02, True), (0.01, 0.02, None), (0.0, 0.02, False), (-0.01, 0.02, False),
    (-0.5, 0.02, False), (None, 0.02, None),
])
def test_one_rule_for_a_claimed_gain(gain, spread, expected) -> None:
    assert beyond_spread(gain, spread) is expected


def label_of(lines: list[str], claim: str) -> str:
    (line,) = [line for line in lines if claim in line]
    return LINE.match(line).group(1)


def test_a_minimizer_below_early_stopping_disagrees_even_within_the_spread() -> None:
    """The results page calls it "not reproduced"; the chapter must not call it inconclusive."""
    best = {"gain_vs_early_stopped_points": -5.3, "gain_vs_full_points": -0.1,
            "spread_points": 15.2, "label": "asam ρ=1.5", "success": 0.285}
    large = {"minimizer": "sam", "success_gain_points": -3.6, "spread_points": 12.5,
             "largest_is_best": False, "best_rho": 0.05, "smallest_rho": 0.05,
             "largest_rho": 0.15, "accuracy_cost_points": 4.4}
    corr = {"spearman": 0.37, "pearson": 0.17, "n": 6}
    data = {"findings": {"best": best, "large_rho": [large], "paper_gain_points": 28.8,
                         "sharpness_correlation": {"top_eigenvalue": corr, "trace": corr}}}
    lines = ch4.verdict_lines(data)
    assert label_of(lines, "transfers better than early-stopped SGD") == "disagrees"
    assert label_of(lines, "the largest rho transfers best") == "disagrees"
    assert label_of(lines, "costs natural accuracy") == "agrees"
    assert label_of(lines, "(lower top eigenvalue) transfer better") == "disagrees"
    best["gain_vs_early_stopped_points"] = 3.0  # positive, within the spread
    large.update(largest_is_best=True, success_gain_points=20.0)
    lines = ch4.verdict_lines(data)
    assert label_of(lines, "transfers better than early-stopped SGD") == "inconclusive"
    assert label_of(lines, "the largest rho transfers best") == "agrees"


def test_a_peak_after_a_decay_is_judged_against_its_own_seed_paired_spread() -> None:
    peaks = [{"schedule": "standard", "decay": 30, "gain": 0.064, "peak_success": 0.31,
              "peak_epoch": 33, "before_mean": 0.246, "spread": 0.04},
             {"schedule": "standard", "decay": 60, "gain": -0.012, "peak_success": 0.27,
              "peak_epoch": 69, "before_mean": 0.28, "spread": 0.04},
             {"schedule": "single@18", "decay": 18, "gain": 0.02, "peak_success": 0.28,
              "peak_epoch": 27, "before_mean": 0.2, "spread": 0.06}]
    data = {"findings": {"window": 9, "decays_followed_by_gain": peaks}, "schedules": {}}
    lines = ch2.verdict_lines(data)
    assert [LINE.match(line).group(1) for line in lines] == ["agrees", "disagrees",
                                                            "inconclusive"]


def test_complementarity_verdicts_and_their_summary_line() -> None:
    data = {"method_order": ["lgv"], "columns": ["none", "mi", "ti"], "findings": {
        "competitive": {"lgv": {"competitive": True, "diff": 0.06, "spread": 0.03,
                                "seeds": [0]}},
        "gain_over_sgd": {"none": {"diff": -0.08, "spread": 0.1},
                          "mi": {"diff": -0.1, "spread": 0.05},
                          "ti": {"diff": 0.02, "spread": 0.05}},
        "lgv_lsam_vs_lgv": {"diff": 0.017, "spread": 0.036},
        "n_combined": 2, "n_complemented": 0}}
    lines = ch5.verdict_lines(data)
    assert label_of(lines, "competitive with") == "agrees"
    assert label_of(lines, "adds to `mi`") == "disagrees"
    assert label_of(lines, "adds to `ti`") == "inconclusive"
    assert label_of(lines, "LGV + l-SAM beats LGV alone") == "inconclusive"
    assert "positive under 0 of 2 combinations" in lines[-1]


def test_every_committed_result_gives_well_formed_verdicts() -> None:
    known = chapters()
    files = sorted(results_root().glob("*/*.json"))
    assert files
    for path in files:
        result = read_result(path, kind=RESULT_KIND)
        module = importlib.import_module(known[result.config["chapter"]].defaults.__module__)
        lines = [line for line in module.verdict_lines(result.data) if line.startswith("- ")]
        assert lines, path
        for line in lines:
            assert LINE.match(line), f"{path}: {line}"
