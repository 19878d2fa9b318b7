"""One rule decides every claim: synthetic comparisons for each status, gains and losses
judged alike, and the chapter pages, the results page and the README render the same claims."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flatness.errors import FlatnessError
from flatness.results import read_result
from flatness.scales import get_scale
from flatness.study.analysis import CHAPTERS, all_claims, claims_of
from flatness.study.chapter import results_root
from flatness.study.claims import (
    AGAINST,
    CONTRADICTED,
    FOR,
    INCONCLUSIVE,
    MISSING,
    MIXED,
    NOT_COMPUTED,
    PARTLY,
    REPRODUCED,
    WITHIN,
    Claim,
    Comparison,
    critical_t,
    decide,
    standing,
)
from flatness.study.findings import (
    README_END,
    README_START,
    REGIME_END,
    REGIME_START,
    STUDY_END,
    STUDY_START,
    readme_regime,
    readme_section,
    readme_study,
    readme_table,
    regime_markdown,
    results_markdown,
    study_markdown,
)
from flatness.study.report import claims_markdown

UP = [0.10, 0.12, 0.11, 0.09]  # t = 0.105 / (0.0129 / 2) = 16: beyond with four seeds
NOISE = [0.10, -0.08, 0.05, -0.04]  # t = 0.2


def paired(values, predicted=+1, **kwargs):
    return Comparison.paired("x", values, predicted, **kwargs)


def test_the_critical_value_is_students_two_sided_95_percent():
    assert critical_t(3) == pytest.approx(3.182, abs=1e-3)
    assert critical_t(math.inf) == pytest.approx(1.960, abs=1e-3)


@pytest.mark.parametrize(("comparisons", "status"), [
    ([paired(UP), paired(UP)], REPRODUCED),
    ([paired(UP), paired(NOISE)], PARTLY),
    ([paired([-v for v in UP]), paired(NOISE)], CONTRADICTED),
    ([paired(UP), paired([-v for v in UP])], MIXED),
    ([paired(NOISE), paired([0.3])], INCONCLUSIVE),  # one seed never counts
    ([paired([None, None])], NOT_COMPUTED),
    ([], NOT_COMPUTED),
])
def test_one_synthetic_case_per_status(comparisons, status):
    assert decide(comparisons) == status
    assert Claim("c", "k", "p", tuple(comparisons)).status == status


def test_gains_and_losses_are_judged_alike():
    """The same numbers with the sign flipped stand against the paper exactly when they
    stood for it: no asymmetric band that a loss only has to stay inside."""
    for values in (UP, NOISE, [0.02, 0.03, 0.01, 0.02], [0.2, -0.1, 0.3, 0.0]):
        gain, loss = paired(values), paired([-v for v in values])
        assert (standing(gain), standing(loss)) in {(FOR, AGAINST), (WITHIN, WITHIN)}
        assert standing(paired(values, -1)) == standing(loss)


def test_a_loss_within_two_standard_deviations_still_counts_against_when_paired():
    """l-SAM -8.9 points below SGD, paired std 4.5 over four seeds: t = -3.9 (the old rule
    called it competitive, inside a band of 2 std = 9.05)."""
    c = Comparison.from_stats("l-SAM − SGD", -0.089, 0.0452, 4, +1)
    assert c.t == pytest.approx(-3.94, abs=0.01) and standing(c) == AGAINST


def test_the_floor_is_a_minimal_effect_either_way():
    tiny = [0.001, 0.0011, 0.0009, 0.001]
    assert standing(paired(tiny)) == FOR
    assert standing(paired(tiny, floor=0.01)) == WITHIN
    assert standing(paired([-v for v in tiny], floor=0.01)) == WITHIN


def test_a_predicted_absence_counts_for_only_inside_its_equivalence_margin():
    flat = [0.001, -0.002, 0.0, 0.001]
    assert standing(paired(flat, 0, floor=0.02)) == FOR
    assert standing(paired(UP, 0, floor=0.02)) == AGAINST
    assert standing(paired(NOISE, 0, floor=0.02)) == WITHIN  # too noisy to tell


def test_missing_comparisons_do_not_count_and_predictions_are_checked():
    assert standing(paired([])) == MISSING
    assert decide([paired(UP), paired([])]) == REPRODUCED
    with pytest.raises(FlatnessError, match="predicted"):
        Comparison("x", 0.1, 0.01, 4, 3, predicted=2)


def test_a_proportion_is_tested_against_its_binomial_standard_error():
    above = Comparison.proportion("acc − chance", 0.139, 0.1, 2000, +1)
    assert above.stderr == pytest.approx(math.sqrt(0.09 / 2000)) and standing(above) == FOR
    assert above.basis == "2000 images"
    assert standing(Comparison.proportion("acc − chance", 0.11, 0.1, 2000, +1)) == WITHIN


def test_older_summaries_read_their_spread_as_an_upper_bound_on_the_std():
    from flatness.study.analysis.paired import from_entry

    c = from_entry("gain", {"gain": 0.03, "spread": 0.01}, 4, +1)
    assert c.stderr == pytest.approx(0.005 / 2)  # std <= spread / 2 = 0.005
    exact = from_entry("gain", {"gain": 0.03, "spread": 0.01, "differences": UP}, 4, +1)
    assert exact.mean == pytest.approx(0.105)


def committed():
    found = {}
    for chapter in CHAPTERS:
        for path in sorted(results_root().glob(f"*/{chapter}.json")):
            found[f"{path.parent.name}/{chapter}"] = read_result(path)
    return found


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_committed_results_chapter_page_and_results_page_agree(name):
    result = committed()[name]
    try:
        claims = claims_of(result)
    except FlatnessError as exc:  # an older summary format: stale, recomputed, never served
        pytest.skip(str(exc))
    page = claims_markdown(claims)
    table = results_markdown({result.config["chapter"]: result})
    for claim in claims:
        assert f"**{claim.status}**: {claim.paper}" in page
        row = next(line for line in table.splitlines() if claim.paper.replace("|", "/") in line)
        assert f"| **{claim.status}** |" in row


@pytest.mark.parametrize(("what", "start", "end", "generated"), [
    ("results table", README_START, README_END, readme_table),
    ("regime statement", REGIME_START, REGIME_END, readme_regime),
    ("account of the study", STUDY_START, STUDY_END, readme_study)])
def test_the_readme_blocks_are_generated_from_the_committed_results(what, start, end, generated):
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert readme_section(readme, start, end) == generated(), (
        f"README.md's {what} is out of date: run `python -c 'from pathlib import Path; from "
        "flatness.study.findings import update_readme; update_readme(Path(\"README.md\"))'`")


def test_the_regime_statement_places_each_scale_on_its_committed_map(tmp_path, monkeypatch):
    from flatness.results import Result, write_result
    from flatness.study.chapter import RESULT_KIND, committed_path
    from flatness.study.chapters import get_chapter

    def result(chapter, scale, **data):
        return Result(kind=RESULT_KIND, scale=scale, data=data, config={
            "chapter": chapter, "summary_version": get_chapter(chapter).summary_version})

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    smoke = {"lr_decay": result("lr_decay", "smoke"), "sharpness": None}
    assert regime_markdown(smoke).startswith("Only `smoke` results")
    assert regime_markdown({"lr_decay": None}).startswith("No chapter has a current result")
    cpu = {"lr_decay": result("lr_decay", "cpu"), "sharpness": result("sharpness", "cpu"),
           "minimizers": result("minimizers", "gpu")}
    text = regime_markdown(cpu)
    assert "**`cpu`** (2. Learning-rate decay, 3. Sharpness). No current regime map" in text
    assert "**`gpu`** (4. Minimizers). No current regime map" in text
    # a map at cpu whose choice is another recipe than the scale's
    cells = [{"cell": {"train_subset": n, "epochs": 6, "width": 0.25, "label": f"{n} images"},
              "rhos": {"0": {"train_acc_mean": 0.95, "test_acc_mean": 0.6,
                             "success_mean": n / 100}}} for n in (10, 20)]
    write_result(committed_path("regimes", "cpu"), result("regimes", "cpu", cells=cells))
    text = regime_markdown(cpu)
    assert "**`cpu`** (2. Learning-rate decay, 3. Sharpness). **The map's choice: 20 images**" \
        in text and "is not on the map" in text and "No current regime map" in text  # gpu
    # the results page passes the map's own result along with the chapters': it places them
    assert regime_markdown({**cpu, "regimes": result("regimes", "cpu", cells=cells)}) == text


def test_the_study_account_comes_from_the_result_files_and_the_scale(tmp_path, monkeypatch):
    """Chapters and seeds, the recipes, the attack, and the jobs, compute, devices and commits
    the result files record; the map's seeds and targets' accuracy join when it is current."""
    from flatness.results import Result, write_result
    from flatness.study.chapter import RESULT_KIND, committed_path
    from flatness.study.chapters import get_chapter

    def result(chapter, scale, seeds, hours, commit, **data):
        return Result(kind=RESULT_KIND, scale=scale, data=data, seeds=seeds, config={
            "chapter": chapter, "summary_version": get_chapter(chapter).summary_version},
            provenance={"compute_time_s": 3600 * hours, "jobs": 10, "code_commit": commit,
                        "precision": "bf16", "compute_devices": {"cpu:x86_64 x1 threads": 10}})

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    assert study_markdown({"lr_decay": None}).startswith("No chapter has a committed result")
    cpu = {"lr_decay": result("lr_decay", "cpu", [0, 1, 2], 2.0, "a" * 40),
           "sharpness": result("sharpness", "cpu", [0, 2], 1.5, "b" * 40 + "+dirty")}
    text = study_markdown(cpu)
    assert text.startswith("**`cpu`**: 2. Learning-rate decay, 3. Sharpness over seeds 0, 1, 2.")
    scale = get_scale("cpu")
    assert (f"`resnet18@0.25` trained on {scale.train_subset:,} images for {scale.epochs} "
            "epochs") in text and "bf16" in text
    assert "BIM L∞ 8/255, 10 steps, on 500 CIFAR-10 test images" in text
    assert ("20 jobs recording 3.5 h of compute (a job shared by two results counts in each), "
            "on cpu:x86_64 x1 threads; the results written at code commits aaaaaaa, "
            "bbbbbbb+dirty.") in text
    assert "test accuracy)" not in text  # no map: the targets' accuracy is not recorded
    cells = [{"cell": {"train_subset": 10, "epochs": 6, "width": 0.25, "label": "10 images"},
              "rhos": {"0": {"train_acc_mean": 0.95, "test_acc_mean": 0.6, "success_mean": 0.5}}}]
    write_result(committed_path("regimes", "cpu"), result(
        "regimes", "cpu", [0, 1], 4.0, "a" * 40, cells=cells,
        target_accuracy={"vgg19_bn@0.25": 0.605, "resnet18@0.25": 0.731}))
    text = study_markdown(cpu)
    assert "over seeds 0, 1, 2; the regime map (chapter 0) over seeds 0, 1." in text
    assert "(2 targets, 60.5-73.1 % test accuracy)." in text
    assert "30 jobs recording 7.5 h" in text
    regimes = result("regimes", "cpu", [0, 1], 4.0, "a" * 40, cells=cells)
    assert study_markdown({**cpu, "regimes": regimes}) == text
    # a chapter computed at another precision is named with it: its runs are not the others'
    fp32 = result("robust_features", "cpu", [0, 1, 2], 1.0, "c" * 40)
    fp32.provenance["precision"] = "fp32"
    text = study_markdown({**cpu, "robust_features": fp32})
    assert ("bf16 for the regime map, 2. Learning-rate decay, 3. Sharpness; fp32 for 1. Robust "
            "and non-robust features (each precision trains its own surrogates and targets")\
        in text
    assert "(2 targets, 60.5-73.1 % test accuracy)." in text  # only the map records them
    fp32.provenance["target_accuracy"] = {"vgg19_bn@0.25": 0.575, "resnet18@0.25": 0.744}
    text = study_markdown({**cpu, "robust_features": fp32})
    assert ("(2 targets per precision, test accuracy 60.5-73.1 % at bf16, 57.5-74.4 % at fp32)."
            in text)


def test_a_chapter_without_a_result_is_not_computed(tmp_path, monkeypatch):
    """Not computed, and where a committed result is stale, its row says it awaits its
    recompute and why."""
    from flatness.results import Result, write_result
    from flatness.study.chapter import committed_path

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    rows = all_claims({})
    assert [r.status for r in rows] == [NOT_COMPUTED] * len(CHAPTERS)
    assert {r.note for r in rows} == {"no current result at this scale"}
    path = committed_path("complementarity", "cpu")
    path.parent.mkdir(parents=True)
    write_result(path, Result(kind="chapter", scale="cpu", data={}, config={
        "chapter": "complementarity", "summary_version": 0}))
    notes = {r.chapter: r.note for r in all_claims({})}
    assert notes["complementarity"].startswith(
        "the `cpu` result awaits its recompute (its summary has version 0 of the chapter's")
    assert notes["lr_decay"] == "no current result at this scale"


def test_the_regime_map_tests_no_claim_of_the_paper():
    from flatness.results import Result

    result = Result(kind="chapter", scale="smoke", config={"chapter": "regimes"}, data={})
    assert claims_of(result) == []


def test_a_summary_of_another_format_version_is_refused_not_misread():
    from flatness.results import Result
    from flatness.study.chapters import get_chapter

    current = get_chapter("sharpness").summary_version
    older = Result(kind="chapter", scale="cpu", data={"findings": {}},
                   config={"chapter": "sharpness", "summary_version": current - 1})
    with pytest.raises(FlatnessError, match=f"version {current - 1} .* reads version {current}"):
        claims_of(older)
