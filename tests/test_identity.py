"""Identities: every store key is one hash (:func:`flatness.store.key_of`) of the inputs that
change what is stored, precision resolved. Pinned, so that no change renames a run, a job or a
result by accident (every cached run and committed result would go stale); and checked to
follow every input and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from flatness.errors import FlatnessError
from flatness.scales import get_scale
from flatness.store import key_of
from flatness.study.chapters import get_chapter
from flatness.study.context import StudySpec
from flatness.study.jobs import AttackSpec, TrainJob, TransferJob
from flatness.study.targets import target_configs
from flatness.training import TrainConfig

#: Per scale planned on a CPU (fp32): the number and key of the keys of the surrogates (every
#: seed), the targets and chapter 4's jobs, and the key of the resolved scale. Changed with the
#: cpu scale chosen by the regime map, and chapter 4's non-SGD surrogates keeping their final
#: weights only (every scale's chapter 4 keys); then with chapter 3's landscape directions (the
#: scales' keys), LookSAM's revision 2 (its runs' keys) and its alpha at the cpu scale; then
#: with the cpu scale's fourth seed for SGD and SAM in chapter 4 (ten more keys: five attacks
#: and five Hessians; none renamed).
STUDY = {"cpu": (113, "2fb57faba952af0b", "9fa785b7e0898803"),
         "gpu": (135, "4e5412f3cf18e1a8", "eacc7a5a595ec84a"),
         "paper": (139, "08f0926debbb06a1", "1273753d5d260b59")}


def study_keys(name: str) -> tuple[int, str, str]:
    spec, chapter = StudySpec(get_scale(name), device="cpu"), get_chapter("minimizers")
    scale = spec.scale
    keys = [TrainJob(TrainConfig.from_scale(scale, seed=s)).key() for s in scale.seeds]
    keys += [TrainJob(c).key() for c in target_configs(scale, "cifar10", None)]
    keys += sorted(job.key() for job in chapter.jobs(spec, chapter.parameters(scale)))
    return len(keys), key_of(keys), key_of(scale.to_dict())


@pytest.mark.parametrize("name", sorted(STUDY))
def test_surrogates_targets_and_minimizer_jobs_keep_their_keys(name):
    assert study_keys(name) == STUDY[name]


def test_runs_keep_their_ids():
    cpu = TrainConfig.from_scale(StudySpec(get_scale("cpu"), device="cpu").scale, seed=1)
    assert cpu.precision == "fp32" and cpu.run_id("src") == "2261bd8225bb2314"
    sat = TrainConfig(arch="resnet18", adv_eps=0.1, adv_steps=1, precision="bf16")
    assert sat.run_id("src") == "ecb7330ce7af9f11"


def test_a_minimizer_revision_renames_its_runs_only():
    """LookSAM's revision 2 (per-tensor norms) enters its runs' keys; other minimizers keep
    theirs, and a run of an earlier revision is refused rather than read as the current code."""
    looksam = TrainConfig(minimizer="looksam", minimizer_params={"rho": 0.05}, precision="fp32")
    assert looksam.to_dict()["minimizer_revision"] == 2
    assert TrainConfig.from_dict(looksam.to_dict()) == looksam
    assert "minimizer_revision" not in TrainConfig(minimizer="sam", precision="fp32").to_dict()
    earlier = {k: v for k, v in looksam.to_dict().items() if k != "minimizer_revision"}
    assert key_of(earlier) != key_of(looksam.to_dict())
    with pytest.raises(FlatnessError, match="revision 1 of minimizer 'looksam'.*revision 2"):
        TrainConfig.from_dict(earlier)


def test_a_job_revision_renames_that_kinds_jobs_only():
    """LGV's revision 2 (steps at its base run's precision) names its jobs; a kind at revision
    1 keeps the identity it had before revisions existed."""
    from flatness.study.jobs import LGVJob

    base = TrainConfig(arch="resnet18", width=0.25, precision="bf16")
    lgv = LGVJob(base, epochs=2, n_models=8)
    assert lgv._identity()["revision"] == 2
    earlier = {k: v for k, v in lgv._identity().items() if k != "revision"}
    assert lgv.key() == f"lgv-{key_of(lgv._identity())}" != f"lgv-{key_of(earlier)}"
    assert "revision" not in TrainJob(base)._identity()


def test_the_key_is_canonical():
    assert key_of({"a": 1, "b": (2, 3)}) == key_of({"b": [2, 3], "a": 1})
    assert key_of({"a": 1}) != key_of({"a": 1.5}) != key_of({"a": "1"})
    assert len(key_of(None)) == 16


#: A changed value of every field of a training configuration.
CHANGED = dict(arch="vgg19_bn", width=0.5, depth=3, dataset="d_r@cpu", train_subset=100,
               subset_seed=1, eval_subset=10, epochs=151, lr=0.1, decay_epochs=(60,),
               decay_factor=0.2, momentum=0.8, weight_decay=1e-4, nesterov=True, batch_size=64,
               augment=False, minimizer="sam", minimizer_params={"rho": 0.1}, seed=1,
               checkpoint_epochs=(5,), state_epochs=(7,), adv_norm="linf", adv_eps=0.5,
               adv_steps=3, adv_step_size=0.1, precision="bf16",
               init_from={"config": TrainConfig(precision="fp32",
                                                checkpoint_epochs=(10,)).to_dict(), "epoch": 10})


def test_every_field_of_a_run_changes_its_id_and_nothing_else_does():
    base = TrainConfig(precision="fp32")
    assert set(CHANGED) == {f.name for f in dataclasses.fields(TrainConfig)}
    ids = {base.run_id("src")}
    for name, value in CHANGED.items():
        changed = dataclasses.replace(base, **{name: value})
        assert changed.run_id("src") not in ids, f"{name} does not change the run id"
        ids.add(changed.run_id("src"))
    assert base.run_id("other copy") not in ids  # the data copy names the run too
    again = TrainConfig(precision="fp32", decay_epochs=[100, 50], minimizer_params={})
    assert again.run_id("src") == base.run_id("src")  # equal configurations, equal ids


def test_every_field_of_a_job_changes_its_key_and_its_inputs_follow_the_scale():
    surrogate = TrainConfig(precision="fp32")
    base = TransferJob(surrogate, AttackSpec(eps=0.1, steps=2))
    changes = dict(surrogate=dataclasses.replace(surrogate, seed=1),
                   attack=AttackSpec(eps=0.1, steps=3), epochs=(3,), target_dataset="d_r@cpu",
                   target_specs=(get_scale("smoke").surrogate,))
    keys = {base.key()}
    for name, value in changes.items():
        key = dataclasses.replace(base, **{name: value}).key()
        assert key not in keys, f"{name} does not change the job's key"
        keys.add(key)
    assert TransferJob(surrogate, AttackSpec(eps=0.1, steps=2)).key() == base.key()
    smoke = StudySpec(get_scale("smoke"), device="cpu")
    retargeted = StudySpec(get_scale("smoke", target_epochs=9), device="cpu")
    assert base.inputs_hash(smoke) != base.inputs_hash(retargeted)  # the targets it reads
    assert base.inputs_hash(smoke) == base.inputs_hash(StudySpec(get_scale("smoke"), "/x"))
