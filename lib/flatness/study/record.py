"""Recording finished work in the committed ledger (``python -m flatness ledger``).

Walks the selected chapters' jobs at a scale, as ``reproduce`` plans them, and copies into the
ledger (:mod:`flatness.ledger`) every output this machine's cache holds and the ledger lacks,
with the finished runs of target models (final weights only), so that the next machine resumes
where this one stopped. Committing ``results/ledger/`` is what makes the work carry over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flatness import ledger
from flatness.study.context import StudySpec
from flatness.study.executors import closure
from flatness.study.jobs import TrainJob
from flatness.study.reproduce import default_plans
from flatness.study.targets import TARGET_SEED
from flatness.training import Run


@dataclass
class RecordCounts:
    """What one recording did."""

    jobs: int = 0  # in the selected chapters' closure
    written: int = 0  # outputs newly recorded
    recorded: int = 0  # outputs the ledger already held
    runs_archived: int = 0  # target runs newly archived with their final weights
    pending: int = 0  # jobs neither cached here nor recorded

    def line(self) -> str:
        return (f"{self.jobs} jobs: {self.written} recorded now, {self.recorded} already in "
                f"the ledger, {self.pending} not finished; {self.runs_archived} target runs "
                f"archived with their final weights ({ledger.ledger_root()})")


def is_target(job: TrainJob) -> bool:
    """Targets are trained from seed ``TARGET_SEED`` on (see :mod:`flatness.study.targets`)."""
    return job.config.seed >= TARGET_SEED


def record_outputs(spec: StudySpec, names: list[str] | None = None) -> RecordCounts:
    """Record the finished outputs of the chapters ``names`` (default: all) at ``spec``."""
    ctx = spec.open()
    counts = RecordCounts()
    jobs = [job for chapter, params in default_plans(spec, names)
            for job in chapter.jobs(spec, params)]
    for job in closure(jobs, spec):
        counts.jobs += 1
        output = job.local_output(ctx)
        if output is None:
            if job.ledger_output(ctx) is None:
                counts.pending += 1
            else:
                counts.recorded += 1
            continue
        if isinstance(job, TrainJob):
            output = {**output, "run": Path(output["run"]).name}  # no machine's path
            if is_target(job):
                counts.runs_archived += ledger.archive_run(Run(job.run_dir(ctx)))
        inputs = {"job": job._identity(), **job._output_inputs(ctx)}
        if ledger.record(job.kind, job.output_name(ctx), output, inputs):
            counts.written += 1
        else:
            counts.recorded += 1
    return counts
