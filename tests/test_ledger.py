"""The committed ledger: finished work carries over to a machine with an empty cache."""

from __future__ import annotations

import json

import pytest

import flatness.study.plan as planning
import flatness.training.engine as engine
from flatness import ledger
from flatness.errors import FlatnessError
from flatness.paths import repo_root
from flatness.store import STORE_VERSION, read_entry
from flatness.study import StudySpec, run_jobs
from flatness.study.common import surrogate
from flatness.study.executors import closure, files_needed
from flatness.study.jobs import AttackSpec, TrainJob, TransferJob
from flatness.study.plan import plan
from flatness.study.record import record_outputs
from flatness.training import Run


def tiny_spec(shared_cifar) -> StudySpec:
    return StudySpec.create("smoke", data=shared_cifar, device="cpu", n_attack_images=16,
                            epochs=2, decay_epochs="1")


@pytest.fixture
def trained_seeds(monkeypatch):
    """The seeds of every run trained from here on (a restored or recorded run trains none)."""
    seeds: list[int] = []
    original = engine._Trainer.__init__

    def counting(self, config, *args, **kwargs):
        seeds.append(config.seed)
        original(self, config, *args, **kwargs)

    monkeypatch.setattr(engine._Trainer, "__init__", counting)
    return seeds


def move_to_a_fresh_machine(monkeypatch, tmp_path, name: str) -> None:
    monkeypatch.setenv("FLATNESS_CACHE", str(tmp_path / name))


def test_recorded_work_is_not_redone_on_a_machine_with_an_empty_cache(
        shared_cifar, tmp_path, monkeypatch, trained_seeds):
    monkeypatch.setenv("FLATNESS_CACHE", str(tmp_path / "first"))
    monkeypatch.setenv("FLATNESS_LEDGER", str(tmp_path / "ledger"))
    spec = tiny_spec(shared_cifar)
    job = TransferJob(surrogate(spec.scale, 0), AttackSpec(eps=8 / 255, steps=2))
    first = run_jobs([job], spec, progress=False)
    targets = len(spec.scale.targets)
    assert len(trained_seeds) == 1 + targets

    counts = record_outputs_of([job], spec)
    assert (counts.written, counts.pending) == (2 + targets, 0)
    assert counts.runs_archived == targets  # the targets' final weights, not the surrogate's

    move_to_a_fresh_machine(monkeypatch, tmp_path, "second")
    trained_seeds.clear()
    again = run_jobs([job], spec, progress=False)
    assert trained_seeds == []  # nothing trained, nothing attacked: all read from the ledger
    assert again[job.key()] == first[job.key()]
    train = again[TrainJob(job.surrogate).key()]
    assert train["metrics"] == first[TrainJob(job.surrogate).key()]["metrics"]
    assert list((tmp_path / "second").glob("runs/*/status.json")) == []
    monkeypatch.setattr(planning, "study_jobs", lambda spec, names: {"one": [job]})
    assert [p.cached for p in plan(spec)] == [True] * (2 + targets)  # the plan reads it too


def test_a_job_still_to_compute_retrains_its_surrogate_and_restores_the_targets(
        shared_cifar, tmp_path, monkeypatch, trained_seeds):
    monkeypatch.setenv("FLATNESS_CACHE", str(tmp_path / "first"))
    monkeypatch.setenv("FLATNESS_LEDGER", str(tmp_path / "ledger"))
    spec = tiny_spec(shared_cifar)
    config = surrogate(spec.scale, 0)
    recorded = TransferJob(config, AttackSpec(eps=8 / 255, steps=2))
    first = run_jobs([recorded], spec, progress=False)
    record_outputs_of([recorded], spec)

    move_to_a_fresh_machine(monkeypatch, tmp_path, "second")
    trained_seeds.clear()
    new = TransferJob(config, AttackSpec(eps=4 / 255, steps=2))
    ordered, ctx = closure([recorded, new], spec), spec.open()
    needed = files_needed(ordered, spec, ctx)
    assert needed == {job.key() for job in ordered if isinstance(job, TrainJob)}
    available = [job.cached_output(ctx, files=True) is not None for job in ordered]
    assert available == [False] + [True] * len(spec.scale.targets) + [True, False]
    outputs = run_jobs([recorded, new], spec, progress=False)
    assert trained_seeds == [config.seed]  # the surrogate's weights are needed, not recorded
    assert outputs[recorded.key()] == first[recorded.key()]
    assert outputs[new.key()]["targets"] == first[recorded.key()]["targets"]
    for target in closure([new], spec)[1:-1]:  # the target zoo, restored from the archive
        run = Run(target.run_dir(ctx))
        assert run.is_complete and not run.resume_path.exists()
        archived = ledger.archived_run(run.dir.name) / "checkpoints"
        assert [p.name for p in archived.iterdir()] == [f"epoch_{run.config.epochs:04d}.pt"]


def test_training_an_archived_target_restores_it_whatever_asks(
        shared_cifar, tmp_path, monkeypatch, trained_seeds):
    """``python -m flatness targets`` and ``train`` read the archive too, not only the study."""
    from flatness.study.targets import target_configs
    from flatness.training import train

    monkeypatch.setenv("FLATNESS_CACHE", str(tmp_path / "first"))
    monkeypatch.setenv("FLATNESS_LEDGER", str(tmp_path / "ledger"))
    spec = tiny_spec(shared_cifar)
    config = target_configs(spec.scale)[0]
    first = train(config, data=shared_cifar, device="cpu", progress=False)
    assert ledger.archive_run(first) and not ledger.archive_run(first)  # once

    move_to_a_fresh_machine(monkeypatch, tmp_path, "second")
    trained_seeds.clear()
    again = train(config, data=shared_cifar, device="cpu", progress=False)
    assert trained_seeds == [] and again.is_complete and again.dir.name == first.dir.name
    assert again.metrics() == first.metrics()
    for a, b in zip(again.load_state_dict().values(), first.load_state_dict().values()):
        assert (a == b).all()


def record_outputs_of(jobs, spec):
    """:func:`record_outputs` over ``jobs`` instead of a chapter's."""
    import flatness.study.record as record

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(record, "default_plans",
                      lambda spec, names: [(_Fixed(jobs), {})])
        return record_outputs(spec)


class _Fixed:
    def __init__(self, jobs):
        self._jobs = jobs

    def jobs(self, spec, params):
        return list(self._jobs)


def test_a_corrupt_ledger_entry_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FLATNESS_LEDGER", str(tmp_path))
    path = ledger.entry_path("transfer", "transfer-0123")
    path.parent.mkdir(parents=True)
    path.write_text('{"store": 1, "val')
    with pytest.raises(FlatnessError, match="corrupt.*delete it"):
        ledger.read("transfer", "transfer-0123")
    assert ledger.read("transfer", "transfer-absent") is None


def test_only_finished_runs_are_archived(tmp_path):
    run = Run(tmp_path / "run")
    run.dir.mkdir()
    run.set_status("running")
    with pytest.raises(FlatnessError, match="not complete"):
        ledger.archive_run(run)


def test_the_committed_ledger_is_well_formed():
    """Every committed entry reads with this store version under its own name, and every
    archived run is finished and carries the final checkpoint its config names."""
    root = repo_root() / "results" / "ledger"
    if not root.is_dir():
        pytest.skip("no ledger committed yet")
    for path in root.glob("*/*.json"):
        envelope = json.loads(path.read_text())
        assert envelope["store"] == STORE_VERSION and envelope["key"] == path.stem, path
        assert path.stem.startswith(f"{path.parent.name}-"), path
        assert read_entry(path) is not None
    for folder in (root / "runs").glob("*"):
        run = Run(folder)
        assert run.is_complete, folder
        assert run.checkpoint_path(run.config.epochs).is_file(), folder
