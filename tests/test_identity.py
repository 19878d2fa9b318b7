"""Cache identities are stable: a new option at its default must not rename a single run, job
or result, or every cached run and committed result of the study would go stale."""

from __future__ import annotations

import pytest

from flatness.study.targets import target_configs
from flatness.scales import get_scale
from flatness.study.chapters import get_chapter
from flatness.study.context import StudySpec, short_hash
from flatness.study.jobs import TrainJob
from flatness.training import TrainConfig

#: As of commit 64fd1a4 (the code of the committed cpu results): per scale, the number and hash
#: of the keys of the surrogates (every seed), the targets and chapter 4's jobs, and the scale.
#: (Committed results are checked whole by test_reproduce: none may be stale.)
STUDY = {"cpu": (48, "2beda7d855824a89", "bf8092f29cd2bf7a"),
         "gpu": (135, "3116146d7236c63e", "5d65f4177b610e56"),
         "paper": (139, "c2331b9d03de88b5", "221e30b74fd697cb")}


@pytest.mark.parametrize("name", sorted(STUDY))
def test_surrogates_targets_and_minimizer_jobs_keep_their_keys(name):
    scale = get_scale(name)
    spec, chapter = StudySpec(scale), get_chapter("minimizers")
    keys = [TrainJob(TrainConfig.from_scale(scale, seed=s)).key() for s in scale.seeds]
    keys += [TrainJob(c).key() for c in target_configs(scale, "cifar10", None)]
    keys += sorted(job.key() for job in chapter.jobs(spec, chapter.parameters(scale)))
    assert (len(keys), short_hash(keys), short_hash(scale.to_dict())) == STUDY[name]


def test_runs_keep_their_ids():
    assert TrainConfig.from_scale(get_scale("cpu"), seed=1).run_id("src") == "cd1cd93f57370c6a"
    sat = TrainConfig(arch="resnet18", adv_eps=0.1, adv_steps=1)
    assert sat.run_id("src") == "1deca7123d53ba96"
