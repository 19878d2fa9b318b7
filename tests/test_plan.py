"""The study's dry run: every job once, what is cached, and the compute the cache recorded."""

from __future__ import annotations

import dataclasses

import pytest

from flatness.cli import main
from flatness.study import StudySpec
from flatness.study.executors import closure
from flatness.study.jobs import DatasetJob, TrainJob
from flatness.study.plan import (
    PlannedJob,
    _source_model_s,
    plan,
    plan_table,
    precision_note,
    study_jobs,
    wall_time_s,
)
from flatness.study.reproduce import reproduce
from flatness.training import TrainConfig


def _spec(shared_cifar) -> StudySpec:
    return StudySpec.create("smoke", data=shared_cifar, device="cpu", n_attack_images=12,
                            epochs=2, decay_epochs="1")


def test_plan_lists_every_job_once_and_sees_what_reproduce_cached(
        shared_cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path / "results"))
    spec = _spec(shared_cifar)
    before = plan(spec, ["lr_decay"])
    expected = closure(study_jobs(spec, ["lr_decay"])["lr_decay"], spec)
    assert [p.label for p in before] == [job.label for job in expected]
    # (other tests on this worker may have cached some of these jobs already)
    assert all(p.compute_s == 0 for p in before if not p.cached)

    reproduce(spec.scale, names=["lr_decay"], data=shared_cifar, device="cpu", progress=False)
    after = plan(spec, ["lr_decay"])
    assert [p.label for p in after] == [p.label for p in before]
    assert all(p.cached and p.compute_s > 0 for p in after)
    total = plan_table(after).splitlines()[-1].split()
    assert total[:4] == ["total", str(len(after)), str(len(after)), "0"]
    hours = sum(p.compute_s for p in after) / 3600
    assert float(total[4]) == round(hours, 2) and total[5] == "0.00"


def test_the_compute_still_to_run_is_estimated_from_the_cached_jobs_of_its_kind():
    def job(kind, cached, seconds=0.0):
        return PlannedJob("lr_decay", kind, f"{kind} job", cached, seconds)

    planned = [job("train", True, 3600), job("train", True, 10800), job("train", False),
               job("train", False), job("transfer", False)]
    lines = plan_table(planned).splitlines()
    train = next(line for line in lines if " train " in line).split()
    assert train[2:] == ["4", "2", "2", "4.00", "4.00"]  # two more at the 2 h mean
    transfer = next(line for line in lines if " transfer " in line).split()
    assert transfer[-1] == "?"  # nothing of its kind cached: no estimate
    assert lines[-1].split()[-1] == "?"


def test_a_job_still_to_run_costs_what_its_siblings_on_other_seeds_recorded():
    def job(work, cached, seconds=0.0, chapter="minimizers"):
        return PlannedJob(chapter, "train", f"{work} job", cached, seconds, work)

    # a cheap target (1 h) and an expensive surrogate (5 h) cached; one more seed of each
    planned = [job("target", True, 3600), job("surrogate", True, 18000),
               job("target", False), job("surrogate", False, chapter="complementarity")]
    rows = {line.split()[0]: line.split() for line in plan_table(planned).splitlines()[2:-2]}
    assert rows["minimizers"][-1] == "1.00"  # the target's sibling, not the 3 h mean
    assert rows["complementarity"][-1] == "5.00"  # siblings are found across chapters


def test_a_job_of_other_size_is_priced_at_its_kinds_recorded_rate():
    def job(work, units, cached, seconds=0.0, chapter="regimes"):
        return PlannedJob(chapter, "train", f"{work} job", cached, seconds, work, units)

    # 1 h recorded for 1e6 units: 3e6 units of other work cost 3 h, wherever they are planned
    planned = [job("target", 1e6, True, 3600), job("big", 3e6, False),
               job("late", 5e5, False, chapter="minimizers")]
    rows = {line.split()[0]: line.split() for line in plan_table(planned).splitlines()[2:-2]}
    assert rows["regimes"][-1] == "3.00" and rows["minimizers"][-1] == "0.50"


def test_a_kind_never_run_is_priced_at_the_rate_of_the_kind_it_is_priced_as():
    def job(kind, units, cached, seconds=0.0, chapter="complementarity", priced_as=None):
        return PlannedJob(chapter, kind, f"{kind} job", cached, seconds, kind, units,
                          priced_as=priced_as)

    # training recorded 1 h for 1e6 units: an LGV collection of 2e5 units costs 0.2 h; a
    # robustness check priced as the attacks, of which none is stored, has no estimate
    planned = [job("train", 1e6, True, 3600), job("lgv", 2e5, False, priced_as="train"),
               job("robustness", 1e3, False, chapter="robust_features", priced_as="transfer")]
    rows = {line.split()[0]: line.split() for line in plan_table(planned).splitlines()[2:-2]}
    assert rows["complementarity"][-1] == "0.20" and rows["robust_features"][-1] == "?"
    # its own kind's rate comes first once one of its jobs is stored (other work: 2 h per 4e5)
    planned.append(PlannedJob("regimes", "lgv", "other lgv job", True, 7200, "other", 4e5,
                              priced_as="train"))
    rows = {line.split()[0]: line.split() for line in plan_table(planned).splitlines()[2:-2]}
    assert rows["complementarity"][-1] == "1.00"


def test_work_units_grow_with_images_epochs_passes_and_width(cifar_tiny):
    from flatness.study.jobs import AttackSpec, LGVJob, RobustnessJob, SharpnessJob, TransferJob

    spec = StudySpec.create("smoke", data=cifar_tiny, device="cpu")

    def units_of(job):
        return job.work_units(spec)

    base = TrainConfig(arch="resnet18", width=0.25, train_subset=1000, epochs=6,
                       decay_epochs=(2, 4), checkpoint_epochs=(4,))
    units = units_of(TrainJob(base))
    assert units == 1000 * 6 * 0.25**2
    assert units_of(TrainJob(dataclasses.replace(base, width=0.5))) == 4 * units
    assert units_of(TrainJob(dataclasses.replace(base, minimizer="sam"))) == 2 * units
    assert units_of(TrainJob(dataclasses.replace(base, train_subset=None))) == 50 * units
    # a derived dataset holds its scale's robust_dataset_size images, not CIFAR-10's 50,000
    derived = dataclasses.replace(base, train_subset=None,
                                  dataset="d_nr@cpu[robust_dataset_size=3000]")
    assert units_of(TrainJob(derived)) == 3 * units
    late = base.branch(4, minimizer="sam")  # two epochs of SAM after SGD's fourth
    assert units_of(TrainJob(late)) == units * 2 / 6 * 2
    attack = AttackSpec(eps=8 / 255, steps=10)
    assert (units_of(TransferJob(base, attack, epochs=(2, 4, 6)))
            == 3 * units_of(TransferJob(base, attack)))
    assert units_of(SharpnessJob(base, n_images=200)) == 2 * units_of(SharpnessJob(
        base, n_images=100))
    # an attack step is an image's forward and backward pass: images count, as in robustness
    transfer = units_of(TransferJob(base, attack))
    assert transfer == 10 * spec.scale.n_attack_images * 0.25**2
    assert units_of(RobustnessJob(base, eps=(0.25, 0.5), steps=20, n_images=100)) == (
        2 * 20 * 100 * 0.25**2)
    # LGV's SGD epochs cost what a training run's do, one pass per step
    assert units_of(LGVJob(base, epochs=2)) == 1000 * 2 * 0.25**2
    assert LGVJob.priced_as == "train" and RobustnessJob.priced_as == "transfer"


def test_jobs_differing_only_by_seed_share_their_work():
    def train(seed, epochs=2):
        return TrainJob(TrainConfig(arch="resnet18", width=0.125, epochs=epochs, seed=seed))

    assert train(0).key() != train(1).key()
    assert train(0).work_key() == train(1).work_key() != train(0, epochs=3).work_key()


def test_a_run_on_a_derived_dataset_not_built_yet_is_not_cached(shared_cifar):
    spec = _spec(shared_cifar)
    dataset = "d_r@smoke[robust_dataset_size=96]"  # never built by any test
    job = TrainJob(TrainConfig(dataset=dataset, arch="resnet18", width=0.125, epochs=1))
    assert job.cached_output(spec.open()) is None


def test_a_source_model_shared_by_derived_datasets_counts_once():
    """D_R and D_NR are built from one source model: the plan adds its training time to the
    first stored dataset that names it, not to both."""
    counted: set[str] = set()
    shared = {"source_run": "standard-s0", "source_model_wall_s": 30.0}
    d_r, d_nr = DatasetJob("d_r@smoke"), DatasetJob("d_nr@smoke")
    assert [_source_model_s(d_r, shared, counted), _source_model_s(d_nr, shared, counted)] \
        == [30.0, 0.0]
    other = {"source_run": "adversarial-s0", "source_model_wall_s": 12.5}
    assert _source_model_s(d_r, other, counted) == 12.5
    assert _source_model_s(d_nr, None, set()) == 0.0  # not built yet: nothing recorded
    train = TrainJob(TrainConfig(arch="resnet18", width=0.125, epochs=1))
    assert _source_model_s(train, shared, set()) == 0.0


def test_reproduce_plan_prints_the_table_and_runs_nothing(shared_cifar, capsys, monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("--plan must not run the study")

    monkeypatch.setattr("flatness.study.reproduce.run_jobs", no_run)
    code = main(["reproduce", "--plan", "--scale", "smoke", "--set", "n_attack_images=12",
                 "--chapters", "sharpness", "--data", str(shared_cifar), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split() == ["chapter", "kind", "jobs", "cached", "to", "run",
                                           "recorded", "h", "to", "run", "h"]
    assert "sharpness" in out and out.splitlines()[-1].startswith("total")


@pytest.mark.parametrize("scale", ["gpu", "paper"])
def test_the_gpu_and_paper_studies_plan_every_kind_of_job(cifar_tiny, scale):
    """The scales no test trains at still make a valid graph (their defaults, their epochs)."""
    planned = plan(StudySpec.create(scale, data=cifar_tiny, device="cpu"))
    assert len(planned) > 200 and not any(p.cached for p in planned)
    assert {p.kind for p in planned} == {"dataset", "train", "transfer", "robustness",
                                         "sharpness", "landscape", "lgv"}


def test_progress_labels_tell_apart_runs_that_differ_in_schedule_or_adversarial_training():
    base = TrainConfig(arch="resnet18", width=0.25, epochs=90, decay_epochs=(30, 60), seed=1)
    constant = dataclasses.replace(base, decay_epochs=())
    sat = dataclasses.replace(base, adv_eps=0.1, adv_steps=1)
    assert TrainJob(base).label == "train cifar10/resnet18@0.25 sgd() 90 ep lr/10 at 30,60 seed 1"
    assert "90 ep constant lr" in TrainJob(constant).label
    assert "sgd() adv l2 0.1x1 90 ep" in TrainJob(sat).label


def test_the_wall_time_as_workers_follows_the_dependencies():
    hour = 3600.0

    def job(name, cached=False, seconds=0.0, reads=()):
        return PlannedJob("minimizers", "train", name, cached, seconds, name, None, name,
                          tuple(reads))

    # a and b cost 2 h and 1 h (their siblings a0 and b0 recorded it), c reads both (1 h, by
    # its kind's mean of the cached ones: (2 + 1) / 2 = 1.5 h), d reads the cached z
    planned = [job("a0", True, 2 * hour), job("b0", True, hour), job("z", True, hour),
               dataclasses.replace(job("a"), work="a0"), dataclasses.replace(job("b"), work="b0"),
               job("c", reads=("a", "b")), job("d", reads=("z",))]
    # one worker: the sum (2 + 1 + 4/3 + 4/3 h: c and d at the kind's cached mean)
    mean = (2 + 1 + 1) / 3 * hour
    assert wall_time_s(planned, 1) == pytest.approx(3 * hour + 2 * mean)
    # two: a | b then d (ready at once), c waits for a: a ends at 2 h, c at 2 h + mean
    assert wall_time_s(planned, 2) == pytest.approx(2 * hour + mean)
    assert wall_time_s(planned, 8) == pytest.approx(2 * hour + mean)  # the critical path
    last = plan_table(planned, workers=2).splitlines()[-1]
    assert last.startswith(f"as 2 worker(s): about {(2 * hour + mean) / hour:.2f} h")
    unknown = [*planned, PlannedJob("minimizers", "sharpness", "s", False, 0.0, key="s")]
    assert wall_time_s(unknown, 2) is None
    assert wall_time_s(unknown, 1, unknown_s=hour) == pytest.approx(4 * hour + 2 * mean)
    assert (f"at least {(2 * hour + mean) / hour:.2f} h (1 jobs without an estimate count 0)"
            in plan_table(unknown, workers=2))


def test_a_running_study_weighs_each_job_by_its_expected_seconds():
    from flatness.study.estimates import expected_seconds

    def job(name, cached=False, seconds=0.0, work="", kind="train"):
        return PlannedJob("", kind, name, cached, seconds, work, None, name)

    planned = [job("a0", True, 600.0, "a"), job("a1", work="a"), job("b1", work="b"),
               job("t1", kind="transfer")]
    # a1: its sibling's 600 s; b1: the kind's stored mean (600 s); the transfer: nothing of
    # its kind stored, so the mean of the others
    assert expected_seconds(planned) == {"a1": 600.0, "b1": 600.0, "t1": 600.0}
    assert expected_seconds([job("t1", kind="transfer")]) == {"t1": 1.0}  # nothing to go by


def test_a_cpu_is_told_of_the_jobs_stored_at_its_other_precision(shared_cifar, monkeypatch):
    """``auto`` resolves to fp32 here (the suite pins no native bf16), so the plan counts fp32
    jobs: where more of the study is stored at bf16, the note says how many and how to reuse
    them; a scale that pins its precision, or nothing stored at bf16, gives no note. A
    native-bf16 CPU is told the same of a study stored at fp32."""
    import flatness.study.plan as plan_module
    from flatness.scales import get_scale

    scale = get_scale("smoke", n_attack_images=12, epochs=2, decay_epochs="1")
    spec = StudySpec(scale, data=shared_cifar, device="cpu")
    assert scale.precision == "auto" and spec.scale.precision == "fp32"
    stored = {"bf16": 3}

    def fake_plan(at, names=None):
        cached = stored.get(at.scale.precision, 0)
        return [PlannedJob("lr_decay", "train", f"job {i}", i < cached, 0.0, f"w{i}", None,
                           f"k{i}") for i in range(4)]

    monkeypatch.setattr(plan_module, "plan", fake_plan)
    here = fake_plan(spec)
    note = precision_note(scale, spec, here, ["lr_decay"])
    assert note is not None and "3 of these 4 jobs are stored at bf16" in note
    assert "FLATNESS_NATIVE_BF16=1" in note
    stored["fp32"] = 3
    assert precision_note(scale, spec, fake_plan(spec), ["lr_decay"]) is None
    pinned = dataclasses.replace(scale, precision="fp32")
    stored.pop("fp32")
    assert precision_note(pinned, StudySpec(pinned, data=shared_cifar, device="cpu"), here) is None
    # a native-bf16 CPU is told of a study stored at fp32 (computed where bf16 is emulated)
    monkeypatch.setenv("FLATNESS_NATIVE_BF16", "1")
    native = StudySpec(scale, data=shared_cifar, device="cpu")
    assert native.scale.precision == "bf16"
    stored.update(fp32=4, bf16=1)
    note = precision_note(scale, native, fake_plan(native), ["lr_decay"])
    assert note is not None and "4 of these 4 jobs are stored at fp32" in note
    assert "FLATNESS_NATIVE_BF16=0" in note
    stored["bf16"] = 4
    assert precision_note(scale, native, fake_plan(native), ["lr_decay"]) is None


def test_reproduce_says_before_it_runs_that_a_study_stored_at_bf16_is_not_resumed(
        shared_cifar, capsys, monkeypatch):
    """The precision note reaches a run too (on stderr, before any job), not only --plan."""
    order = []

    def note(scale, spec, planned=None, names=None):
        order.append("note")
        return f"note: {names} at {spec.scale.precision}"

    def fake_reproduce(*args, **kwargs):
        order.append("run")
        return []

    monkeypatch.setattr("flatness.study.plan.precision_note", note)
    monkeypatch.setattr("flatness.study.reproduce.reproduce", fake_reproduce)
    code = main(["reproduce", "--scale", "smoke", "--chapters", "lr_decay", "--data",
                 str(shared_cifar), "--device", "cpu"])
    assert code == 0 and order == ["note", "run"]
    assert "note: ['lr_decay'] at fp32" in capsys.readouterr().err
