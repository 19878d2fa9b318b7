"""Cache identities are stable: a new option at its default must not rename a single run, job
or result, or every cached run and committed result of the study would go stale."""

from __future__ import annotations

import pytest

from flatness.scales import get_scale
from flatness.study.context import StudySpec, short_hash
from flatness.study.executors import closure
from flatness.study.reproduce import default_plans
from flatness.training import TrainConfig

#: The study's job keys and scales as of commit 64fd1a4 (the committed cpu results' code).
STUDY = {"cpu": (258, "abdf41ef009082a4", "bf8092f29cd2bf7a"),
         "gpu": (342, "2d267ef9c46a60c2", "5d65f4177b610e56"),
         "paper": (346, "feb0fd8a58bc0f41", "221e30b74fd697cb")}


@pytest.mark.parametrize("name", sorted(STUDY))
def test_the_study_keeps_its_job_keys_and_scale(name):
    spec = StudySpec(get_scale(name))
    keys = sorted({job.key() for chapter, params in default_plans(spec)
                   for job in closure(chapter.jobs(spec, params), spec)})
    assert (len(keys), short_hash(keys), short_hash(spec.scale.to_dict())) == STUDY[name]


def test_runs_keep_their_ids():
    assert TrainConfig.from_scale(get_scale("cpu"), seed=1).run_id("src") == "cd1cd93f57370c6a"
    sat = TrainConfig(arch="resnet18", adv_eps=0.1, adv_steps=1)
    assert sat.run_id("src") == "1deca7123d53ba96"
