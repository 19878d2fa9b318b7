"""What ``reproduce`` would run, before it runs: the study's jobs, each once, cached or not.

A dry run for planning compute at ``gpu`` or ``paper`` scale, and the measured cost of a study
already run: per chapter (a job shared by chapters counts for the first that needs it) and
kind of job, how many jobs are cached, how many remain, and the compute time the cached ones
recorded. Nothing is trained or attacked; the CIFAR-10 copy's arrays are read to name its runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from flatness.study.chapters import chapters, get_chapter
from flatness.study.context import StudySpec
from flatness.study.executors import closure
from flatness.study.jobs import DatasetJob, Job


@dataclass(frozen=True)
class PlannedJob:
    """One job of the study: the chapter that first needs it, and whether it is cached."""

    chapter: str
    kind: str
    label: str
    cached: bool
    compute_s: float  # recorded by the cached output; 0 for a job still to run


def study_jobs(spec: StudySpec, names: list[str] | None = None) -> dict[str, list[Job]]:
    """Each selected chapter's jobs (default parameters at ``spec``'s scale), in study order."""
    selected = [get_chapter(n) for n in names] if names else list(chapters().values())
    return {c.name: c.jobs(spec, c.parameters(spec.scale)) for c in selected}


def plan(spec: StudySpec, names: list[str] | None = None) -> list[PlannedJob]:
    """Every job of the selected chapters and their dependencies, once, dependencies first."""
    ctx = spec.open()
    planned: list[PlannedJob] = []
    seen: set[str] = set()
    source_models: set[str] = set()  # derived datasets share source models: count each once
    for chapter, jobs in study_jobs(spec, names).items():
        for job in closure(jobs, spec):
            if job.key() in seen:
                continue
            seen.add(job.key())
            output = job.cached_output(ctx)
            compute = 0.0 if output is None else job.compute_time_s(output)
            if (isinstance(job, DatasetJob) and output is not None
                    and output.get("source_run") not in source_models):
                source_models.add(output.get("source_run"))
                compute += float(output.get("source_model_wall_s") or 0.0)
            planned.append(PlannedJob(chapter, job.kind, job.label, output is not None,
                                      compute))
    return planned


def plan_table(planned: list[PlannedJob]) -> str:
    """Jobs, cached, to run and recorded compute per chapter and kind, with the study's total."""
    groups: dict[tuple[str, str], list[PlannedJob]] = {}
    for job in planned:
        groups.setdefault((job.chapter, job.kind), []).append(job)
    header = f"{'chapter':18s} {'kind':11s} {'jobs':>5s} {'cached':>7s} {'to run':>7s} " \
             f"{'recorded h':>11s}"
    lines = [header, "-" * len(header)]

    def line(chapter: str, kind: str, jobs: list[PlannedJob]) -> str:
        cached = sum(j.cached for j in jobs)
        hours = sum(j.compute_s for j in jobs) / 3600
        return (f"{chapter:18s} {kind:11s} {len(jobs):5d} {cached:7d} {len(jobs) - cached:7d} "
                f"{hours:11.2f}")

    lines += [line(chapter, kind, jobs) for (chapter, kind), jobs in groups.items()]
    lines += ["-" * len(header), line("total", "", planned)]
    return "\n".join(lines)
