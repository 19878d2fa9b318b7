"""Chapter 1 (robust and non-robust features): parameters, job planning and reuse, the dataset
job, and the aggregation of synthetic job outputs into the chapter's findings."""

from __future__ import annotations

import dataclasses
import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from flatness.errors import FlatnessError
from flatness.plots import robust_features as plots
from flatness.scales import get_scale
from flatness.study.analysis import robust_features as analysis
from flatness.study.chapters import lr_decay
from flatness.study.chapters import robust_features as ch
from flatness.study.claims import FOR, WITHIN, standing
from flatness.study.context import StudySpec
from flatness.study.executors import closure
from flatness.study.jobs import DatasetJob, TrainJob, TransferJob

SMOKE = get_scale("smoke")
CPU = get_scale("cpu")


def params(scale=SMOKE, **overrides):
    return ch.CHAPTER.parameters(scale, overrides)


# -- parameters -------------------------------------------------------------------------------
def test_defaults_follow_the_paper_and_fig3_every_thins_the_epochs():
    smoke, cpu, paper = params(SMOKE), params(CPU), params(get_scale("paper"))
    assert smoke["seeds"] == [0] and cpu["seeds"] == [0, 1, 2] and paper["seeds"] == [0, 1, 2]
    assert paper["target_eps"] == pytest.approx(
        {"d_r": 16 / 255, "d_nr": 2 / 255, "d_rand": 1 / 255, "d_det": 1 / 255})
    assert cpu["surrogate_datasets"] == ["cifar10", "d_r", "d_nr"]
    assert cpu["target_datasets"] == ["d_r", "d_nr", "d_rand", "d_det"]
    every, last = CPU.checkpoint_every, CPU.epochs
    assert cpu["epochs"] == list(range(every, last + 1, every))  # every checkpoint, as ch. 2
    assert cpu["fig3_epochs"][-1] == last
    assert cpu["fig3_epochs"] == cpu["epochs"]  # cpu: 15 epochs, every one
    # every other checkpoint, the final one kept (a fixed shape: 30 epochs, checkpoints every 2)
    shape = params(get_scale("cpu", epochs=30, decay_epochs="10,20", checkpoint_every=2,
                             **{"robust_features.fig3_every": 2}))
    assert shape["fig3_epochs"] == [2, 6, 10, 14, 18, 22, 26, 30]
    assert paper["fig3_epochs"] == paper["epochs"] == list(range(1, 151))


@pytest.mark.parametrize("overrides, message", [
    ({"surrogate_datasets": ["d_r", "d_rand"]}, "unknown dataset 'd_rand' in surrogate"),
    ({"target_datasets": ["cifar10"]}, "unknown dataset 'cifar10' in target"),
    ({"target_datasets": "d_r"}, "target_datasets must be a list"),
    ({"target_datasets": []}, "at least one"),
    ({"surrogate_datasets": ["d_r", "d_r"]}, "lists a name twice"),
    ({"target_eps": {"d_r": 0.1}}, "no budget for d_nr, d_rand, d_det"),
    ({"target_eps": {**ch.TARGET_EPS, "d_x": 0.1}}, "unknown dataset d_x"),
    ({"target_eps": {**ch.TARGET_EPS, "d_nr": -0.1}}, r"target_eps\[d_nr\] must be > 0"),
    ({"target_eps": {**ch.TARGET_EPS, "d_nr": "2/255"}}, "must be a number"),
    ({"target_eps": 0.1}, "target_eps must map"),
    ({"eps": 0}, "eps must be > 0"),
    ({"attack_steps": 0}, "attack_steps must be an integer >= 1"),
    ({"epochs": 3}, "epochs must be a non-empty list"),
    ({"fig3_epochs": [0, 1]}, "fig3_epochs must be a non-empty list"),
    ({"seeds": "0"}, "seeds must be"),
    ({"robustness_eps": []}, "robustness_eps must be a non-empty list"),
    ({"robustness_eps": [0.25, -1]}, "robustness_eps must be > 0"),
    ({"robustness_images": 0}, "robustness_images must be an integer >= 1"),
])
def test_bad_parameters_fail_with_a_clear_message(overrides, message):
    with pytest.raises(FlatnessError, match=message):
        params(SMOKE, **overrides)


def test_unknown_parameter_names_and_unsaved_checkpoints_are_errors():
    with pytest.raises(FlatnessError, match="no parameter rho"):
        params(SMOKE, rho=0.1)
    every_other = get_scale("cpu", checkpoint_every=2)  # keeps every other epoch only
    p = params(every_other, epochs=[3, 4])
    with pytest.raises(FlatnessError, match=r"epochs \[3\] are not saved checkpoints"):
        ch.jobs(StudySpec(every_other), p)


# -- job planning -----------------------------------------------------------------------------
def test_smoke_plan_counts_kinds_and_dependencies():
    p = params(SMOKE)
    jobs = ch.jobs(StudySpec(SMOKE), p)
    kinds = [j.kind for j in jobs]
    # 4 datasets, 4 Fig. 3 targets, 3 surrogates x 1 seed, 4 targets x 1 seed, and the
    # robustness of the 3 surrogates
    assert kinds == ["dataset"] * 4 + ["train"] * 4 + ["transfer"] * 7 + ["robustness"] * 3
    assert len({j.key() for j in jobs}) == len(jobs)
    assert [j.dataset for j in jobs[:4]] == ["d_r@smoke", "d_nr@smoke", "d_rand@smoke",
                                             "d_det@smoke"]
    spec = StudySpec(SMOKE)
    order = [j.key() for j in closure(jobs, spec)]
    for job in jobs[4:]:  # every run on a derived dataset waits for that dataset's job
        for dep in job.deps(spec):
            assert order.index(dep.key()) < order.index(job.key())
    d_r = ch.fig2_job(SMOKE, p, "d_r", 0)
    assert DatasetJob("d_r@smoke") in d_r.deps(spec)[0].deps(spec)
    towards = ch.fig3_job(SMOKE, p, "d_rand", 0)
    target_training = towards.deps(spec)[1]  # the target trained on D_rand, after D_rand
    assert target_training.config.dataset == "d_rand@smoke"
    assert target_training.deps(spec) == (DatasetJob("d_rand@smoke"),)
    assert towards.target_specs == (SMOKE.surrogate,) and towards.target_dataset == "d_rand@smoke"
    assert towards.attack.eps == pytest.approx(1 / 255)
    assert towards.epochs == (1, 2, 3)


def test_derived_runs_use_the_whole_derived_set_with_the_scale_recipe():
    config = ch.surrogate_config(CPU, "d_nr", 1)
    assert config.dataset == "d_nr@cpu" and config.train_subset is None
    assert (config.epochs, config.decay_epochs, config.seed) == (CPU.epochs, CPU.decay_epochs, 1)
    (target,) = [j for j in ch.jobs(StudySpec(CPU), params(CPU, target_datasets=["d_det"]))
                 if j.kind == "train"]
    assert target.config.dataset == "d_det@cpu" and target.config.train_subset is None
    assert (target.config.arch, target.config.width) == ("resnet18", 0.25)
    assert target.config.epochs == CPU.target_epochs and target.config.seed >= 1000


def test_the_cifar_surrogate_trains_on_the_derived_datasets_source_images_and_jobs_pickle():
    p = params(CPU)
    smaller = get_scale("cpu", robust_dataset_size=5000)
    ours = ch.fig2_job(smaller, params(smaller), "cifar10", 0)
    assert (ours.surrogate.train_subset, ours.surrogate.subset_seed) == (
        5000, ch.RobustParams.from_scale(smaller).seed)
    assert ours.surrogate == dataclasses.replace(ch.surrogate(smaller, 0), train_subset=5000)
    # the cpu scale's datasets are as large as its training set: one subset, chapter 2's run
    assert CPU.robust_dataset_size == CPU.train_subset
    same = CPU
    theirs = lr_decay.transfer_job(same, lr_decay.CHAPTER.parameters(same, {}),
                                   list(same.decay_epochs), 0)
    assert ch.fig2_job(same, params(same), "cifar10", 0).key() == theirs.key()
    derived = ch.fig2_job(CPU, p, "d_r", 0)
    assert type(derived) is TransferJob and derived.surrogate.dataset == "d_r@cpu"
    train = ch.target_job(CPU, "d_r")
    assert type(train) is TrainJob
    for job in (derived, train, DatasetJob("d_r@cpu")):  # Ray ships jobs by pickle
        assert pickle.loads(pickle.dumps(job)).key() == job.key()


def test_only_the_datasets_in_use_are_built():
    p = params(SMOKE, surrogate_datasets=["cifar10"], target_datasets=["d_rand"],
               target_eps={"d_rand": 1 / 255})
    jobs = ch.jobs(StudySpec(SMOKE), p)
    assert [j.dataset for j in jobs if j.kind == "dataset"] == ["d_rand@smoke"]
    assert len(jobs) == 1 + 1 + 1 + 1 + 1  # dataset, target, fig. 2, fig. 3, robustness


# -- the dataset job --------------------------------------------------------------------------
def test_dataset_job_builds_what_the_registered_name_loads(tmp_path, make_cifar_copy):
    from flatness.data import load_dataset

    data = make_cifar_copy(tmp_path, counts=(13, 26))  # smoke: 128 train, 256 test
    job = DatasetJob("d_det@smoke")
    out = job.run(StudySpec.create("smoke", data=data, device="cpu").open())
    assert out["images"] == 128 and sum(out["class_counts"]) == 128
    assert out["construction"].startswith("targeted") and not out["source_model_robust"]
    assert out["relabelled_fraction_changed"] == 1.0  # y + 1: every label changes
    assert out["images_per_s"] > 0 and 0 <= out["source_model_test_acc"] <= 1
    train_set, _ = load_dataset("d_det@smoke", str(data))
    assert train_set.source.startswith(f"d_det:{out['artifact_key']}")


# -- aggregation and findings -----------------------------------------------------------------
def test_early_stopping_gain_is_paired_by_seed():
    epochs = [1, 2, 3]
    es = analysis.early_stopping_gain(epochs, [[0.2, 0.5, 0.3], [0.2, 0.35, 0.3]])
    assert es["best_epoch"] == 2 and es["final_epoch"] == 3
    assert es["gain"] == pytest.approx(0.125)
    assert es["spread"] == pytest.approx(2 * np.std([0.2, 0.05], ddof=1))
    assert es["differences"] == [pytest.approx(0.2), pytest.approx(0.05)]
    one = analysis.early_stopping_gain(epochs, [[0.1, 0.2, 0.3]])
    assert one["best_epoch"] == 3 and one["gain"] == 0 and one["differences"] == [0.0]


def test_chance_margin_is_two_binomial_standard_errors():
    assert analysis.chance_margin(10_000) == pytest.approx(2 * math.sqrt(0.09 / 10_000))


def _transfer(curve, acc=0.5, targets=("a", "b")):
    return {"targets": list(targets), "n_images": 8, "epochs": [1, 2, 3],
            "success": [[v] * len(targets) for v in curve], "mean": list(curve),
            "test_acc": [acc] * 3}


@pytest.fixture(scope="module")
def summary():
    """The summary of hand-made outputs of every job (two seeds)."""
    p = params(SMOKE, seeds=[0, 1])
    curves = {  # surrogate dataset -> per-seed mean success curves
        "cifar10": ([0.3, 0.6, 0.4], [0.3, 0.62, 0.41]),
        "d_r": ([0.2, 0.5, 0.3], [0.2, 0.48, 0.31]),
        "d_nr": ([0.2, 0.3, 0.4], [0.2, 0.31, 0.4]),  # still rising: no early-stopping gain
    }
    outputs = {}
    for d, per_seed in curves.items():
        for seed, curve in zip(p["seeds"], per_seed):
            outputs[ch.fig2_job(SMOKE, p, d, seed).key()] = _transfer(curve, acc=0.4 + seed / 10)
    for t in p["target_datasets"]:
        for seed in p["seeds"]:
            key = ch.fig3_job(SMOKE, p, t, seed).key()
            outputs[key] = _transfer([0.5, 0.7, 0.5], targets=["x"])
        acc = {"d_r": 0.5, "d_nr": 0.3, "d_rand": 0.25, "d_det": 0.11}[t]
        outputs[ch.target_job(SMOKE, t).key()] = {"metrics": [{"test_acc": 0.1},
                                                              {"test_acc": acc}]}
    for k in ch.KINDS:
        built = ({"representation_distance": {"start_mean": 2.0, "end_mean": 0.5}}
                 if k in ("d_r", "d_nr") else {"relabelled_fraction_changed": 0.9})
        outputs[DatasetJob(f"{k}@smoke").key()] = {
            "kind": k, "images": 128, "construction": "synthetic", "images_per_s": 40.0,
            "source_model_robust": k == "d_r", "source_model_test_acc": 0.8, **built}
    robust = {"cifar10": ([0.05, 0.0], [0.07, 0.01]), "d_r": ([0.30, 0.1], [0.26, 0.08]),
              "d_nr": ([0.0, 0.0], [0.01, 0.0])}
    for d, per_seed in robust.items():
        for seed, values in zip(p["seeds"], per_seed):
            outputs[ch.robustness_job(SMOKE, p, d, seed).key()] = {
                "n_images": 1000, "eps": [0.25, 0.5], "clean": 0.5, "robust": list(values)}

    return p, analysis.summarize(SimpleNamespace(scale=SMOKE), p, outputs)


def test_summarize_synthetic_outputs(summary):
    _, data = summary
    f = data["findings"]
    claims = {c.key: c for c in analysis.claims(data, "smoke")}
    es = {c.label.split(":")[0]: c for c in claims["early-stopping-whatever-the-features"]
          .comparisons}
    assert standing(es["surrogate on D_R"]) == WITHIN  # t = 12.3 < 12.7 (two seeds, 1 df)
    assert standing(es["surrogate on D_NR"]) != FOR and f["surrogates"]["d_nr"]["best_epoch"] == 3
    assert f["surrogates"]["d_r"]["gain"] == pytest.approx(((0.5 - 0.3) + (0.48 - 0.31)) / 2)
    assert es["surrogate on D_R"].mean == pytest.approx(f["surrogates"]["d_r"]["gain"])
    assert all(es[f"target on {analysis.LABELS[t]}"].mean > 0 for t in ch.KINDS)
    margin = analysis.chance_margin(SMOKE.eval_subset)
    assert f["accuracy"]["margin"] == pytest.approx(margin)
    premise = {c.label: c for c in claims["ilyas-datasets"].comparisons}
    rand = premise["target trained on D_rand: CIFAR-10 accuracy − chance"]
    det = premise["target trained on D_det: CIFAR-10 accuracy − chance"]
    assert rand.mean == pytest.approx(0.15) and standing(rand) == FOR
    assert det.mean == pytest.approx(0.01) and standing(det) == WITHIN
    s = data["surrogates"]["d_r"]
    assert s["success_mean"] == pytest.approx([0.2, 0.49, 0.305])
    assert s["test_acc_mean"] == pytest.approx([0.45] * 3)
    assert data["surrogate_accuracy"]["d_r"]["mean"] == pytest.approx(0.45)
    assert data["towards_targets"]["d_nr"]["eps"] == pytest.approx(2 / 255)
    assert data["towards_targets"]["d_rand"]["targets"] == ["x"]
    assert list(data["datasets"]) == list(ch.KINDS)
    assert data["decay_epochs"] == [1, 2] and data["target_arch"] == "resnet18@0.125"
    assert data["robustness"]["d_r"]["robust_mean"] == pytest.approx([0.28, 0.09])
    check = f["robustness"]
    small, large = check["per_eps"]
    robust = premise["L2 eps 0.25 accuracy, surrogate on D_R − on CIFAR-10"]
    assert robust.mean == pytest.approx(0.22) and standing(robust) == WITHIN  # t = 7.3
    assert small["gain"] == pytest.approx(0.22)
    assert small["d_r"] == pytest.approx(0.28) and small["cifar10"] == pytest.approx(0.06)
    assert large["gain"] == pytest.approx(0.085) and check["clean"]["d_r"] == 0.5


def test_figures_and_tables_from_the_summary(summary):
    p, data = summary
    datasets = plots.datasets_table(data)
    assert datasets.count("\n") == 1 + len(ch.KINDS) and "| D_R | synthetic | robust" in datasets
    assert "2.000 → 0.500" in datasets and "| 0.90 |" in datasets
    accuracy = plots.accuracy_table(data)
    assert "| D_rand | Fig. 3 target (resnet18@0.125) | 0.250 |" in accuracy
    assert "Chance is 0.10" in accuracy
    robustness = plots.robustness_table(data, p["seeds"])
    assert "L2 eps 0.25 | L2 eps 0.5 |" in robustness and robustness.endswith("seeds [0, 1].")
    dropdown = plots.surrogates_dropdown(data)
    assert [f.name for f in dropdown.frames] == [
        "surrogate trained on=CIFAR-10", "surrogate trained on=D_R", "surrogate trained on=D_NR"]
    curve = plots.surrogate_curve(data, "d_r", "a")
    assert curve.data[-1].name == "best epoch" and list(curve.data[-1].x) == [2]
    assert plots.surrogate_controls(data) == {"name": ["cifar10", "d_r", "d_nr"],
                                              "target": ["mean", "a", "b"]}
    assert {t.name for t in plots.surrogates_overlay(data).data} >= {"CIFAR-10", "D_R", "D_NR"}
    assert {t.name for t in plots.surrogates_accuracy(data).data} >= {"CIFAR-10", "D_R"}
    targets = plots.targets_dropdown(data)
    assert len(targets.frames) == len(ch.KINDS)
    assert plots.target_curve(data, "d_r").data[0].name == "towards D_R (eps 16/255)"


def test_robustness_check_needs_a_gain_above_the_spread_at_every_budget():
    def summary(values):
        return analysis.robustness_summary([{"n_images": 500, "eps": [0.25, 0.5],
                                             "clean": 0.5, "robust": list(v)} for v in values])

    check = analysis.robustness_check({"cifar10": summary([(0.10, 0.02), (0.12, 0.03)]),
                                       "d_r": summary([(0.12, 0.2), (0.13, 0.21)])})
    close, far = check["per_eps"]
    assert close["gain"] == pytest.approx(0.015) and far["gain"] == pytest.approx(0.18)
    assert close["differences"] == [pytest.approx(0.02), pytest.approx(0.01)]
    # one seed: the band is two binomial standard errors of the difference
    one = analysis.robustness_check({"cifar10": summary([(0.10, 0.05)]),
                                     "d_r": summary([(0.14, 0.1)])})
    assert one["per_eps"][0]["spread"] == pytest.approx(2 * math.sqrt(2 * 0.1 * 0.9 / 500))
    assert analysis.robustness_check({"d_r": summary([(0.2, 0.1)])}) is None


def test_robustness_job_measures_clean_and_l2_accuracy(tmp_path, make_cifar_copy):
    from flatness.study.jobs import RobustnessJob

    model = dataclasses.replace(ch.surrogate_config(SMOKE, "cifar10", 0), epochs=1,
                                decay_epochs=(), checkpoint_epochs=(), train_subset=None,
                                eval_subset=None)
    job = RobustnessJob(model, eps=(0.25, 2.0), steps=3, n_images=40)
    spec = StudySpec.create(SMOKE, make_cifar_copy(tmp_path, counts=(6, 4)), "cpu")
    out = job.run(spec.open())
    assert out["n_images"] == 40 and out["eps"] == [0.25, 2.0]
    assert 0 <= out["robust"][1] <= out["robust"][0] <= out["clean"] <= 1
    assert job.deps(spec) == (TrainJob(job.model),)
