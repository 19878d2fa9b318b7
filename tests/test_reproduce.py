"""The study's job graph: dependency order, caching, the local and Ray executors, reproduce."""

from __future__ import annotations

import pytest

from flatness.errors import FlatnessError
from flatness.results import Result
from flatness.store import read_entry
from flatness.study import StudySpec, run_jobs
from flatness.study.chapters.lr_decay import CHAPTER as LR_DECAY
from flatness.study.common import surrogate
from flatness.study.executors import closure
from flatness.study.jobs import AttackSpec, RobustnessJob, SharpnessJob, TrainJob, TransferJob
from flatness.study.reproduce import reproduce, summary_table

#: Where a committed cpu result says it was computed: a CPU, in fp32.
ON_CPU = {"precision": "fp32", "device_kind": "cpu"}


def planned_scale(scale):
    """``scale`` as a CPU plans it (precision resolved), what a result records."""
    return StudySpec(scale, device="cpu").scale

TINY = {"schedules": {"standard": [1, 2]}, "seeds": [0], "single_decay_seeds": [0]}


def tiny_spec(shared_cifar) -> StudySpec:
    return StudySpec.create("smoke", data=shared_cifar, device="cpu", n_attack_images=16,
                            epochs=2, decay_epochs="1")


def test_closure_lists_dependencies_first_and_once(shared_cifar):
    spec = tiny_spec(shared_cifar)
    config = surrogate(spec.scale, 0)
    a = TransferJob(config, AttackSpec(eps=8 / 255, steps=2))
    b = TransferJob(config, AttackSpec(eps=4 / 255, steps=2))
    ordered = closure([a, b], spec)
    kinds = [type(j).__name__ for j in ordered]
    targets = len(spec.scale.targets)
    assert kinds == ["TrainJob"] * (1 + targets) + ["TransferJob", "TransferJob"]
    assert ordered[0] == TrainJob(config)  # the surrogate, then the target zoo, each once


def test_unknown_executor_is_a_clear_error(shared_cifar):
    with pytest.raises(FlatnessError, match="unknown executor"):
        run_jobs([], tiny_spec(shared_cifar), executor="slurm")


def test_unknown_chapter_parameter_is_a_clear_error():
    with pytest.raises(FlatnessError, match="no parameter"):
        LR_DECAY.parameters(StudySpec.create("smoke").scale, {"rho": 0.1})


def test_ray_executor_runs_the_graph_and_fills_the_shared_cache(shared_cifar, monkeypatch):
    ray = pytest.importorskip("ray")
    spec = tiny_spec(shared_cifar)
    params = LR_DECAY.parameters(spec.scale, TINY)
    jobs = LR_DECAY.jobs(spec, params)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outputs = run_jobs(jobs, spec, executor="ray")
    finally:
        ray.shutdown()
    transfer = outputs[jobs[0].key()]
    assert transfer["epochs"] == [1, 2] and len(transfer["success"][0]) == len(spec.scale.targets)
    ctx = spec.open()
    assert jobs[0].output_path(ctx).is_file()  # written by a Ray worker into the shared cache

    def no_compute(self, ctx):
        raise AssertionError("cached by the Ray run: nothing may be recomputed")

    monkeypatch.setattr(TransferJob, "compute", no_compute)
    local = run_jobs(jobs, spec, executor="local", progress=False)
    assert local[jobs[0].key()] == read_entry(jobs[0].output_path(ctx))


def test_reproduce_publishes_chapter_results(shared_cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path / "results"))
    spec = tiny_spec(shared_cifar)
    summaries = reproduce(spec.scale, names=["lr_decay"], data=shared_cifar, device="cpu",
                          progress=False)
    assert [s.name for s in summaries] == ["lr_decay"]
    published = tmp_path / "results" / "smoke" / "lr_decay.json"
    assert published.is_file()
    from flatness.results import read_result
    from flatness.scales import get_scale
    from flatness.study.chapter import staleness

    result = read_result(published)
    assert (result.provenance["precision"], result.provenance["device_kind"]) == ("fp32", "cpu")
    ran = result.provenance["compute_devices"]  # every job counted where it ran
    assert sum(ran.values()) == result.provenance["jobs"] and all(d.startswith("cpu:") for d in ran)
    # the zoo's strength, as its training runs measured it (each precision trains its own)
    targets = result.provenance["target_accuracy"]
    assert sorted(targets) == sorted(f"{t.arch}@{t.width:g}" for t in spec.scale.targets)
    assert all(0.0 <= a <= 1.0 for a in targets.values())
    definition = get_scale("smoke", n_attack_images=16, epochs=2, decay_epochs="1")
    assert definition.precision == "auto" and staleness("lr_decay", definition, result) is None
    assert "lr_decay" in summary_table(summaries)
    # a second run (another worker summarised the chapter first) still publishes the file
    published.unlink()
    reproduce(spec.scale, names=["lr_decay"], data=shared_cifar, device="cpu", progress=False)
    assert published.is_file()


def test_committed_result_serves_default_requests_and_matching_explicit_ones(
        shared_cifar, tmp_path, monkeypatch):
    from flatness.results import write_result
    from flatness.study import chapter_result
    from flatness.study.chapter import RESULT_KIND, committed_path

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    committed = Result(kind=RESULT_KIND, scale="cpu", config={
        "chapter": "lr_decay", "params": {"seeds": [0, 1], "eps": 0.03},
        "summary_version": LR_DECAY.summary_version}, data={"marker": 1})
    write_result(committed_path("lr_decay", "cpu"), committed)
    served = chapter_result(LR_DECAY, "auto", {"seeds": None, "eps": None})
    assert served.scale == "cpu" and served.data == {"marker": 1}
    assert chapter_result(LR_DECAY, "cpu", {"seeds": [0, 1]}).data == {"marker": 1}

    def computed(*args, **kwargs):
        raise RuntimeError("recomputed")

    monkeypatch.setattr("flatness.study.chapter.run_jobs", computed)
    with pytest.raises(RuntimeError, match="recomputed"):  # an explicit, different seed list
        chapter_result(LR_DECAY, "cpu", {"seeds": [5]}, data=shared_cifar, device="cpu")
    # publishing (the chapter command) computes the defaults, not the committed seeds [0, 1]
    with pytest.raises(RuntimeError, match="recomputed"):
        chapter_result(LR_DECAY, "cpu", {}, data=shared_cifar, device="cpu", publish=True)


def test_a_result_from_an_older_definition_of_the_scale_is_not_served(tmp_path, monkeypatch):
    from flatness.io import to_jsonable
    from flatness.results import write_result
    from flatness.scales import get_scale
    from flatness.study.chapter import (
        RESULT_KIND,
        committed_path,
        committed_result,
        resolve_scale,
    )

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    cpu = get_scale("cpu")

    def commit(scale):
        write_result(committed_path("lr_decay", "cpu"), Result(
            kind=RESULT_KIND, scale="cpu", data={"marker": 1}, provenance=ON_CPU, config={
                "chapter": "lr_decay", "params": {},
                "scale": to_jsonable(planned_scale(scale).to_dict()),
                "summary_version": LR_DECAY.summary_version}))

    commit(cpu)
    assert committed_result("lr_decay", cpu).data == {"marker": 1}
    assert resolve_scale("lr_decay", "auto") == "cpu"
    # a redesigned regime map leaves the other chapters current (no other chapter reads it)
    commit(cpu.replace(**{"regimes.seeds": (5, 6)}))
    assert committed_result("lr_decay", cpu).data == {"marker": 1}
    commit(cpu.replace(epochs=cpu.epochs + 1))  # the cpu scale was retuned since
    assert committed_result("lr_decay", cpu) is None
    assert resolve_scale("lr_decay", "auto") == "smoke"


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "paper"])
def test_no_chapter_but_its_own_reads_a_private_section_of_the_scale(name):
    """What lets staleness ignore a private section (chapter.PRIVATE_SECTIONS): redesigning it
    changes no other chapter's parameters or jobs."""
    from flatness.scales import get_scale
    from flatness.study.chapter import PRIVATE_SECTIONS
    from flatness.study.chapters import chapters

    scale = get_scale(name)
    redesigned = {"regimes": scale.replace(**{"regimes.seeds": (7,), "regimes.rhos": (0.0, 0.9),
                                              "regimes.cells": ((100, 9, 0.5),)})}
    assert set(redesigned) == set(PRIVATE_SECTIONS)
    for section, other in redesigned.items():
        for chapter in chapters().values():
            if PRIVATE_SECTIONS[section] == chapter.name:
                continue
            before, after = StudySpec(scale, device="cpu"), StudySpec(other, device="cpu")
            params = chapter.parameters(before.scale)
            assert chapter.parameters(after.scale) == params, chapter.name
            assert ([j.key() for j in chapter.jobs(before, params)]
                    == [j.key() for j in chapter.jobs(after, params)]), chapter.name


def test_a_result_whose_jobs_the_code_now_defines_differently_is_not_served(
        tmp_path, monkeypatch):
    """Retuning a chapter's recipe without touching the scale (here: chapter 2's decay
    epochs) changes the jobs behind a committed result: it is listed as stale, not shown."""
    from flatness.book.reproducibility import render
    from flatness.io import to_jsonable
    from flatness.results import write_result
    from flatness.scales import get_scale
    from flatness.study.chapter import RESULT_KIND, committed_path, committed_result, jobs_hash

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    cpu = get_scale("cpu")
    spec = StudySpec(cpu, device="cpu")
    params = LR_DECAY.parameters(cpu)

    def commit(jobs, version=LR_DECAY.summary_version):
        write_result(committed_path("lr_decay", "cpu"), Result(
            kind=RESULT_KIND, scale="cpu", data={"marker": 1}, provenance=ON_CPU, config={
                "chapter": "lr_decay", "params": params,
                "scale": to_jsonable(spec.scale.to_dict()),
                "jobs_hash": jobs_hash(spec, jobs), "summary_version": version}))

    jobs = LR_DECAY.jobs(spec, params)
    assert jobs_hash(spec, jobs) == jobs_hash(spec, jobs[::-1])  # order does not matter
    commit(jobs)
    assert committed_result("lr_decay", cpu).data == {"marker": 1}
    assert "| yes |" in render(tmp_path)
    commit(jobs, version=LR_DECAY.summary_version - 1)  # same jobs, an older summary format
    assert committed_result("lr_decay", cpu) is None
    assert f"no: its summary has version {LR_DECAY.summary_version - 1}" in render(tmp_path)
    commit(jobs[:-1])  # computed from other jobs than the code now plans
    assert committed_result("lr_decay", cpu) is None
    assert "no: the code defines its jobs differently" in render(tmp_path)
    del params["schedules"]  # a parameter the chapter has since required
    commit(jobs)
    assert committed_result("lr_decay", cpu) is None
    assert "no: its parameters no longer fit the chapter (KeyError" in render(tmp_path)


def test_a_result_is_judged_with_the_precision_and_device_it_records(tmp_path, monkeypatch):
    """A result computed in fp32 on a CPU stays valid where ``auto`` would mean bf16 (a GPU, a
    CPU with native bf16): its jobs are re-planned as it recorded them; a scale whose
    definition now asks for another precision is a redefined scale."""
    import flatness.study.context as context
    from flatness.io import to_jsonable
    from flatness.results import write_result
    from flatness.scales import get_scale
    from flatness.study.chapter import RESULT_KIND, committed_path, jobs_hash, staleness

    monkeypatch.setenv("FLATNESS_RESULTS", str(tmp_path))
    cpu = get_scale("cpu")
    spec = StudySpec(cpu, device="cpu")
    params = LR_DECAY.parameters(cpu)
    jobs = LR_DECAY.jobs(spec, params)
    result = Result(kind=RESULT_KIND, scale="cpu", data={}, provenance=ON_CPU, config={
        "chapter": "lr_decay", "params": params, "scale": to_jsonable(spec.scale.to_dict()),
        "jobs_hash": jobs_hash(spec, jobs), "summary_version": LR_DECAY.summary_version})
    write_result(committed_path("lr_decay", "cpu"), result)
    assert staleness("lr_decay", cpu, result) is None
    monkeypatch.setattr(context, "resolve_precision", lambda precision, kind: (
        "bf16" if precision == "auto" else precision))  # this machine: auto means bf16
    assert StudySpec(cpu, device="cpu").scale.precision == "bf16"
    assert staleness("lr_decay", cpu, result) is None
    assert "redefined" in staleness("lr_decay", cpu.replace(precision="bf16"), result)


#: Committed results known to be stale, each with why, until they are recomputed (a scale
#: redefined while its chapters' jobs run for hours, say): none at present.
AWAITING_RECOMPUTE: dict[str, str] = {}


def test_every_committed_result_is_served() -> None:
    """The book shows the committed results: each must match the code's current definition of
    its scale and its jobs (recompute with ``python -m flatness reproduce`` after a retune),
    except those listed as awaiting a recompute, which must be stale for the reason given."""
    from flatness.results import read_result
    from flatness.scales import get_scale
    from flatness.study.chapter import RESULT_KIND, results_root, staleness

    files = sorted(results_root().glob("*/*.json"))
    assert files, "no committed result"
    for path in files:
        result = read_result(path, kind=RESULT_KIND)
        assert "jobs_hash" in result.config, f"{path}: no jobs hash (computed before it existed)"
        why = staleness(result.config["chapter"], get_scale(result.scale), result)
        name = f"{path.parent.name}/{path.name}"
        if name in AWAITING_RECOMPUTE:
            assert why is not None and AWAITING_RECOMPUTE[name] in why, name
            continue
        assert why is None, f"{path} is stale: {why}; recompute it"


def test_cached_outputs_follow_the_inputs_the_scale_resolves(shared_cifar):
    """A transfer job's own fields do not name its targets' recipe: retuning the targets must
    give its output another cache path, while a job that does not read them keeps its own."""
    base = tiny_spec(shared_cifar)
    retuned = StudySpec.create("smoke", data=shared_cifar, device="cpu", n_attack_images=16,
                               epochs=2, decay_epochs="1",
                               target_epochs=base.scale.target_epochs + 1)
    config = surrogate(base.scale, 0)
    transfer = TransferJob(config, AttackSpec(eps=8 / 255, steps=2))
    sharpness = SharpnessJob(config, epochs=(2,), n_images=16)
    ctx, retuned_ctx = base.open(), retuned.open()
    assert transfer.key() == TransferJob(config, AttackSpec(eps=8 / 255, steps=2)).key()
    assert transfer.output_path(ctx) != transfer.output_path(retuned_ctx)
    assert sharpness.output_path(ctx) == sharpness.output_path(retuned_ctx)


def test_a_derived_dataset_s_definition_reaches_the_jobs_trained_on_it(monkeypatch):
    """Robustness of a surrogate trained on ``d_r@smoke``: the dataset's size is set by the
    named scale, so redefining that scale must change the job's inputs."""
    import dataclasses

    import flatness.scales as scales

    spec = StudySpec.create("smoke")
    job = RobustnessJob(surrogate(spec.scale, 0, dataset="d_r@smoke", train_subset=None))
    before = job.inputs_hash(spec)
    smoke = scales.SCALES["smoke"]
    monkeypatch.setitem(scales.SCALES, "smoke", dataclasses.replace(
        smoke, robust_dataset_size=smoke.robust_dataset_size * 2))
    assert job.inputs_hash(spec) != before
    retargeted = dataclasses.replace(smoke, target_epochs=smoke.target_epochs + 1)
    monkeypatch.setitem(scales.SCALES, "smoke", retargeted)
    assert job.inputs_hash(spec) == before  # the targets' recipe does not build the dataset


def test_a_headless_run_logs_one_line_per_job(capsys):
    """Under nohup (stderr is a file) the study prints a line per job: count, elapsed time,
    an estimate of what remains, the job's own time and label."""
    from dataclasses import dataclass

    from flatness.study.jobs import Job

    @dataclass(frozen=True)
    class Echo(Job):
        name: str

        @property
        def label(self) -> str:
            return f"echo {self.name}"

        def run(self, ctx, files=False):
            return {"name": self.name}

    outputs = run_jobs([Echo("a"), Echo("b")], StudySpec.create("smoke"))
    assert [o["name"] for o in outputs.values()] == ["a", "b"]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["study: job 1/2", "study: job 2/2"]
    assert "elapsed, ~" in lines[0] and " left  " in lines[0]
    assert lines[1].endswith("s  echo b")
    run_jobs([Echo("c")], StudySpec.create("smoke"), progress=False)
    assert capsys.readouterr().err == ""


def test_compile_reaches_training_and_changes_no_key(shared_cifar, monkeypatch):
    import flatness.study.context as context

    seen = []
    monkeypatch.setattr(context, "train", lambda config, **kw: seen.append(kw["compile"]))
    eager, compiled = tiny_spec(shared_cifar), StudySpec.create(
        "smoke", data=shared_cifar, device="cpu", compile=True, n_attack_images=16, epochs=2,
        decay_epochs="1")
    job = TrainJob(surrogate(eager.scale, 0))
    assert job.inputs_hash(eager) == job.inputs_hash(compiled)
    compiled.open().train(job.config)
    eager.open().train(job.config)
    assert seen == [True, False]
