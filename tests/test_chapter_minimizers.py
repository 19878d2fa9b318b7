"""Chapter 4 (minimizers): parameters, job planning and reuse, the summary and its findings on
hand-made job outputs, and the figures built from a summary."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from flatness.errors import FlatnessError
from flatness.plots import minimizers as plots
from flatness.scales import get_scale
from flatness.study.analysis import minimizers as analysis
from flatness.study.chapters import minimizers as ch
from flatness.study.claims import FOR, PARTLY, REPRODUCED, WITHIN, standing
from flatness.study.context import StudySpec
from flatness.study.jobs import SharpnessJob, TrainJob, TransferJob

SMOKE = get_scale("smoke")
CPU = get_scale("cpu")
GPU = get_scale("gpu")


def params(scale=SMOKE, **overrides):
    return ch.CHAPTER.parameters(scale, overrides)


# -- parameters -------------------------------------------------------------------------------
def test_smoke_defaults_are_small_and_cpu_covers_the_papers_comparison():
    smoke, cpu = params(SMOKE), params(CPU)
    assert smoke["seeds"] == [0] and "sgd" in smoke["minimizers"]
    assert len(smoke["rhos"]["sam"]) == 2 and len(smoke["minimizers"]) <= 4
    from flatness.minimizers import MINIMIZERS

    # cpu: every minimizer of the paper, each with a rho at a standard and a large radius
    assert set(cpu["minimizers"]) == set(params(GPU)["minimizers"]) == set(MINIMIZERS)
    assert set(cpu["rhos"]) == set(MINIMIZERS) - {"sgd", "swa"}  # those with a rho, no other
    assert all(len(rhos) >= 2 for rhos in cpu["rhos"].values())
    assert len(cpu["rhos"]["sam"]) >= 4 and len(cpu["seeds"]) >= 3
    # ASAM's adaptive rho lives on a scale about ten times SAM's
    assert max(cpu["rhos"]["asam"]) >= 5 * max(cpu["rhos"]["sam"])
    # SAM and l-SAM
    assert len(cpu["rhos"]["sam"]) >= 2
    # the cpu grid avoids the rho the probe found crippling (0.3) for the small surrogate
    assert max(cpu["rhos"]["sam"]) < 0.3


@pytest.mark.parametrize("overrides, message", [
    ({"minimizers": ["sam", "adamw"]}, "unknown minimizer 'adamw'"),
    ({"minimizers": "sam"}, "minimizers must be a non-empty list"),
    ({"minimizers": ["sam", "sam"]}, "twice"),
    ({"rhos": {"sam": [0.05, -0.1]}}, "rho must be >= 0"),
    ({"rhos": {"sam": []}}, "non-empty list"),
    ({"rhos": {"sam": ["0.05"]}}, "non-empty list of numbers"),
    ({"rhos": {"swa": [0.1]}}, "has no rho"),
    ({"rhos": {"lsam": [0.1]}}, "unknown minimizer 'lsam'"),
    ({"rhos": [0.05]}, "rhos must map"),
    ({"seeds": "0"}, "seeds must be a non-empty list"),
    ({"minimizer_seeds": {"sam": []}}, "seeds must be a non-empty list"),
    ({"sharpness": "yes"}, "sharpness must be True or False"),
    ({"attack_steps": 0}, "attack_steps must be an integer >= 1"),
    ({"eps": 0.0}, "eps must be a number > 0"),
    ({"rho": 0.1}, "has no parameter rho"),
])
def test_bad_parameters_are_refused_with_a_clear_message(overrides, message):
    with pytest.raises(FlatnessError, match=message):
        params(SMOKE, **overrides)


def test_unlisted_minimizer_uses_its_default_rho():
    p = params(SMOKE, minimizers=["sgd", "gsam", "swa"])
    assert ch.variants(p) == [("sgd", None), ("gsam", 0.05), ("swa", None)]


def test_a_scales_fixed_hyperparameters_reach_its_runs_and_bad_ones_are_refused():
    """The cpu scale trains LookSAM at alpha 0.1 (the paper's 0.7 stalls its recipe); the other
    minimizers, and LookSAM at the scales that set nothing, keep their defaults."""
    looksam = ch.config(CPU, "looksam", 0.05, seed=0)
    assert looksam.minimizer_params == {"alpha": 0.1, "rho": 0.05}
    assert ch.config(CPU, "sam", 0.05, seed=0).minimizer_params == {"rho": 0.05}
    assert ch.config(GPU, "looksam", 0.05, seed=0).minimizer_params == {"rho": 0.05}
    k3 = get_scale("cpu", **{"minimizers.hyperparameters.looksam": '{"k": 3}'})
    assert ch.config(k3, "looksam", 0.05, seed=0).minimizer_params == {"k": 3, "rho": 0.05}
    for fixed, message in [('{"beta": 1}', "minimizer 'looksam' has no hyper-parameter 'beta'"),
                           ('{"rho": 0.1}', "rho belongs in minimizers.rhos.looksam"),
                           ('{"k": 2.5}', "k='2.5' is not a int")]:
        scale = get_scale("cpu", **{"minimizers.hyperparameters.looksam": fixed})
        with pytest.raises(FlatnessError, match=message):
            ch.config(scale, "looksam", 0.05, seed=0)


def test_the_page_says_which_hyperparameters_its_scale_sets_besides_rho():
    cpu = plots.fixed_hyperparameters_markdown(CPU.to_dict())
    assert "at this scale: looksam alpha = 0.1 (default 0.7)." in cpu
    assert "every minimizer trains with its default" in plots.fixed_hyperparameters_markdown(
        SMOKE.to_dict())
    older = {k: v for k, v in CPU.to_dict()["minimizers"].items() if k != "hyperparameters"}
    assert "every minimizer trains with its default" in plots.fixed_hyperparameters_markdown(
        {"minimizers": older})  # a result computed before scales could set any


# -- jobs -------------------------------------------------------------------------------------
def _kinds(jobs):
    return [type(j).__name__ for j in jobs]


def test_smoke_plan_reuses_the_sgd_curve_for_fully_trained_sgd():
    spec = StudySpec.create("smoke", device="cpu")
    p = params(SMOKE)
    planned = ch.jobs(spec, p)
    n_variants = len(ch.variants(p))  # sgd, sam x2, swa
    assert n_variants == 4
    # one curve (also fully trained SGD's attack) + one attack per other variant; sharpness
    # of every variant's final checkpoint
    assert _kinds(planned).count("TransferJob") == 1 + (n_variants - 1)
    assert _kinds(planned).count("SharpnessJob") == n_variants
    assert len({j.key() for j in planned}) == len(planned)
    curve = ch.curve_job(spec.scale, p, 0)
    assert curve.epochs == tuple(range(1, SMOKE.epochs + 1))
    assert ch.final_job(spec.scale, p, "sgd", None, 0) == curve
    assert all(j.epochs == () for j in planned if isinstance(j, TransferJob) and j != curve)
    assert not any(isinstance(j, SharpnessJob) for j in ch.jobs(spec, params(sharpness=False)))


def test_fully_trained_sgd_gets_its_own_attack_when_the_curve_misses_the_last_epoch():
    scale = get_scale("smoke", epochs=5, decay_epochs="2,4", checkpoint_every=2)
    p = params(scale)
    job = ch.final_job(scale, p, "sgd", None, 0)
    assert job != ch.curve_job(scale, p, 0) and job.epochs == ()
    assert job.surrogate == ch.curve_job(scale, p, 0).surrogate  # same training run


def test_runs_are_shared_with_chapters_2_and_5():
    from flatness.study.chapters import lr_decay

    p = params(CPU)
    standard = lr_decay.transfer_job(CPU, lr_decay.defaults(CPU), list(CPU.decay_epochs), 1)
    assert ch.curve_job(CPU, p, 1).key() == standard.key()
    complementarity = pytest.importorskip("flatness.study.chapters.complementarity")
    c5 = complementarity.defaults(CPU)
    assert (ch.config(CPU, "sam", c5["sam_rho"], 0)
            == complementarity.config(CPU, c5, "sam", 0))
    # l-SAM is one of chapter 4's SAM radii (the scale's lsam_rho, not necessarily the
    # largest: at cpu the grid goes past it), so chapter 5 trains no run of its own
    assert CPU.lsam_rho in p["rhos"]["sam"]
    assert (ch.config(CPU, "sam", CPU.lsam_rho, 0)
            == complementarity.config(CPU, c5, "lsam", 0))
    assert ch.config(CPU, "swa", None, 0) == complementarity.config(CPU, c5, "swa", 0)


def test_sgd_sharpness_is_chapter_3s_job_and_others_use_its_hessian_budget():
    from flatness.study.chapters import sharpness as ch3

    p, p3 = params(CPU), ch3.defaults(CPU)
    assert ch.sharpness_job(CPU, p, "sgd", None, 1).key() == ch3.sharpness_job(CPU, p3, 1).key()
    sam = ch.sharpness_job(CPU, p, "sam", 0.05, 1)
    assert sam.epochs == () and sam.trace_samples == p3["trace_samples"]
    assert sam.n_images == p3["sharpness_images"] and sam.max_iter == p3["max_iter"]
    with pytest.raises(FlatnessError, match="trace_samples must be an integer >= 1"):
        params(CPU, trace_samples=0)


def test_cpu_plan_gives_every_minimizer_every_seed_and_sgd_and_sam_a_fourth():
    p = params(CPU)
    planned = ch.jobs(StudySpec.create("cpu"), p)
    trained = {(j.surrogate.minimizer, j.surrogate.minimizer_params.get("rho"), j.surrogate.seed)
               for j in planned if isinstance(j, TransferJob)}
    assert p["seeds"] == [0, 1, 2]
    for name in p["minimizers"]:
        wanted = {0, 1, 2, 3} if name in ("sgd", "sam") else {0, 1, 2}
        assert {s for m, _, s in trained if m == name} == wanted
    assert {(r, s) for m, r, s in trained if m == "sam" and s == 3} == {
        (rho, 3) for rho in p["rhos"]["sam"]}  # every rho of SAM's grid
    rhos = {r for m, r, _ in trained if m == "asam"}
    assert rhos == set(p["rhos"]["asam"])
    spec = StudySpec.create("cpu")
    assert all(isinstance(d, TrainJob) for j in planned for d in j.deps(spec))


# -- summary ----------------------------------------------------------------------------------
TARGETS = ["t1", "t2"]


def _transfer(epochs, per_target, acc):
    per_target = np.asarray(per_target, dtype=float)
    return {"targets": TARGETS, "epochs": list(epochs), "success": per_target.tolist(),
            "mean": per_target.mean(axis=1).tolist(), "test_acc": list(acc)}


def _sharp(eig, trace, epochs=(SMOKE.epochs,)):
    return {"epochs": list(epochs), "top_eigenvalue": [eig] * len(epochs),
            "trace": [trace] * len(epochs)}


def synthetic(p):
    """Outputs where success grows with rho, accuracy falls with it, and sharper surrogates
    transfer worse; SGD's curve peaks at epoch 2."""
    outputs = {}
    epochs = list(ch.checkpoint_epochs(SMOKE))  # 1, 2, 3
    for seed in ch.seeds_for(p, "sgd"):
        d = 0.02 * seed
        outputs[ch.curve_job(SMOKE, p, seed).key()] = _transfer(
            epochs, [[0.30 + d, 0.10], [0.50 + d, 0.30], [0.40 + d, 0.20]], [0.5, 0.6, 0.7])
    success = {("sam", 0.05): 0.5, ("sam", 0.3): 0.8, ("looksam", 0.05): 0.45,
               ("swa", None): 0.35}  # looksam: added to the smoke defaults below
    for (name, rho), s in success.items():
        for seed in ch.seeds_for(p, name):
            d = 0.02 * seed
            acc = 0.7 - (rho or 0.0)
            outputs[ch.final_job(SMOKE, p, name, rho, seed).key()] = _transfer(
                [SMOKE.epochs], [[s + 0.1 + d, s - 0.1 + d]], [acc])
    for (name, rho), s in success.items():
        for seed in ch.seeds_for(p, name):
            outputs[ch.sharpness_job(SMOKE, p, name, rho, seed).key()] = _sharp(
                10 * (1 - s), 100 * (1 - s) + 5)
    for seed in ch.seeds_for(p, "sgd"):  # SGD over training: flatter at every epoch but the last
        job = ch.sharpness_job(SMOKE, p, "sgd", None, seed)
        out = _sharp(6.0, 65.0, job.epochs)
        out["top_eigenvalue"][-1], out["trace"][-1] = 7.0, 75.0
        outputs[job.key()] = out
    return outputs


@pytest.fixture(scope="module")
def summary():
    p = params(SMOKE, seeds=[0, 1], minimizers=["sgd", "sam", "looksam", "swa"])
    return p, analysis.summarize(SimpleNamespace(scale=SMOKE), p, synthetic(p))


def test_baselines_early_stopped_at_the_best_epoch_and_fully_trained(summary):
    _, d = summary
    es, full = d["early_stopped"], d["fully_trained"]
    assert es["epoch"] == 2
    assert es["success_mean"] == pytest.approx(0.405)  # mean over targets and seeds 0, 1
    assert es["success_std"] == pytest.approx(np.std([0.40, 0.41], ddof=1))
    assert es["per_target_mean"] == pytest.approx([0.51, 0.30])
    assert es["test_acc_mean"] == pytest.approx(0.6) and es["top_eigenvalue_mean"] == 6.0
    assert full["success_mean"] == pytest.approx(0.305) and full["test_acc_mean"] == 0.7
    assert full["top_eigenvalue_mean"] == pytest.approx(7.0)


def test_sgd_with_more_seeds_gives_both_baselines_its_seeds_and_pairs_each_on_common_ones():
    """The cpu scale's design: SGD and SAM on a fourth seed, the others on three. Early-stopped
    SGD is an SGD surrogate: its curve runs on SGD's seeds, so SAM pairs with both baselines
    over every seed they share and LookSAM over its own."""
    p = params(SMOKE, seeds=[0, 1], minimizers=["sgd", "sam", "looksam", "swa"],
               minimizer_seeds={"sgd": [0, 1, 2], "sam": [0, 1, 2]})
    planned = ch.jobs(StudySpec.create("smoke"), p)
    assert {j.surrogate.seed for j in planned if isinstance(j, TransferJob)
            and j.surrogate.minimizer == "sgd"} == {0, 1, 2}
    d = analysis.summarize(SimpleNamespace(scale=SMOKE), p, synthetic(p))
    assert d["early_stopped"]["seeds"] == d["fully_trained"]["seeds"] == [0, 1, 2]
    assert d["surrogates"]["looksam ρ=0.05"]["seeds"] == [0, 1]
    es = next(c for c in analysis.claims(d, "smoke") if c.key.endswith("early-stopped-sgd"))
    pairs = {c.label.split(" − ")[0]: c.n for c in es.comparisons}
    assert pairs["sam ρ=0.3"] == 3 and pairs["looksam ρ=0.05"] == 2


def test_surrogates_gains_ranking_and_lsam(summary):
    _, d = summary
    lsam = d["surrogates"]["sam ρ=0.3"]
    assert lsam["success_mean"] == pytest.approx(0.81)
    assert lsam["gain_vs_early_stopped_points"] == pytest.approx(40.5)
    assert lsam["gain_vs_full_points"] == pytest.approx(50.5)
    assert lsam["test_acc_mean"] == pytest.approx(0.4)
    assert d["lsam"]["rho"] == 0.3 and d["lsam"]["label"] == "sam ρ=0.3"
    assert d["ranking"] == ["sam ρ=0.3", "sam ρ=0.05", "looksam ρ=0.05", analysis.ES, "swa",
                            analysis.FULL]
    assert d["minimizers"]["sam"] == ["sam ρ=0.05", "sam ρ=0.3"]


def test_claims_are_paired_by_seed(summary):
    _, d = summary
    claims = {c.key: c for c in analysis.claims(d, "smoke")}
    es = claims["minimizers-beat-early-stopped-sgd"]
    # each minimizer at its best rho; two seeds: |t| must exceed 12.7 (Student, 1 df)
    assert [c.label for c in es.comparisons] == [
        "sam ρ=0.3 − SGD (early stopped)", "looksam ρ=0.05 − SGD (early stopped)",
        "swa − SGD (early stopped)"]
    assert [c.mean for c in es.comparisons] == [pytest.approx(0.405), pytest.approx(0.055),
                                                 pytest.approx(-0.045)]
    assert [standing(c) for c in es.comparisons] == [FOR, WITHIN, WITHIN]  # t 81, 11, -9
    assert es.status == PARTLY
    full = claims["minimizers-beat-fully-trained-sgd"]
    assert [standing(c) for c in full.comparisons] == [FOR, FOR, WITHIN]  # t 101, 31, 11
    (large,) = claims["large-rho-transfers-best"].comparisons  # looksam has a single rho
    assert large.label == "sam ρ=0.3 − sam ρ=0.05" and large.mean == pytest.approx(0.30)
    (cost,) = claims["large-rho-costs-accuracy"].comparisons
    assert cost.mean == pytest.approx(0.25) and standing(cost) == FOR
    flat = claims["flatter-transfers-better"]
    assert [c.mean for c in flat.comparisons] == [pytest.approx(-1.0)] * 2
    assert flat.status == REPRODUCED


def test_claims_of_an_older_summary_without_per_seed_values_ask_for_a_recompute(summary):
    _, d = summary
    old = {**d, "surrogates": {k: {key: v for key, v in e.items() if key != "per_seed"}
                               for k, e in d["surrogates"].items()}}
    with pytest.raises(FlatnessError, match="recompute"):
        analysis.claims(old, "cpu")


# -- figures ----------------------------------------------------------------------------------
def test_figures_and_table(summary):
    _, d = summary
    slider = plots.rho_slider(d, "sam")
    assert [f.name for f in slider.frames] == ["rho=0.05", "rho=0.3"]
    assert len(slider.data) == 3  # fully trained SGD, early-stopped SGD, SAM at that rho
    curves = plots.rho_curves(d, "success")
    names = {t.name for t in curves.data}
    assert {"sam", "looksam"} <= names and "swa" not in names
    assert plots.rho_curves(d, "top_eigenvalue").data
    scatter = plots.tradeoff_scatter(d)
    assert {t.name for t in scatter.data} >= {"sam", analysis.ES, analysis.FULL}
    table = plots.ranking_markdown(d)
    assert table.count("\n") == 2 + len(d["ranking"]) - 1
    assert "**sam ρ=0.3** (l-SAM)" in table and "+40.5" in table


def test_a_newcomer_follows_the_notebook_to_the_bim_update_in_four_files():
    """The notebook names this chapter's design; its jobs attack with TransferJob, whose
    compute calls the attack defined beside the BIM update."""
    import inspect
    import json

    from flatness.attacks import attack
    from flatness.paths import repo_root

    cells = json.loads((repo_root() / "notebooks" / "04_minimizers.ipynb").read_text())["cells"]
    assert any("from flatness.study.chapters.minimizers import CHAPTER" in "".join(c["source"])
               for c in cells)
    p = params(SMOKE)
    assert isinstance(ch.final_job(SMOKE, p, "sam", 0.05, 0), TransferJob)
    assert inspect.getsourcefile(TransferJob.compute).endswith("study/jobs.py")
    assert "attack(surrogates" in inspect.getsource(TransferJob.compute)
    assert inspect.getsourcefile(attack).endswith("attacks/iterative.py")
