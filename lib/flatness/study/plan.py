"""What ``reproduce`` would run, before it runs: the study's jobs, each once, cached or not.

A dry run for planning compute at ``gpu`` or ``paper`` scale, and the measured cost of a study
already run: per chapter (a job shared by chapters counts for the first that needs it) and
kind of job, how many jobs are cached (here, or in the committed ledger where no job still to
run needs their files), how many remain, the compute time the cached ones recorded and an
estimate for the rest (:mod:`flatness.study.estimates`: a job costs what its siblings on other
seeds recorded, else its work at its kind's recorded rate). A rough guide: architectures of
equal width differ in cost, and a loaded machine records slower rates. Nothing is trained or
attacked; the CIFAR-10 copy's arrays are read to name its runs.

With ``workers``, the table ends with the wall time those estimates give as that many workers
(:func:`wall_time_s`: ``reproduce --workers N``'s schedule, each job once the jobs it reads are
done, earlier jobs first): the compute still to run, spread as its dependencies allow.

Precision ``auto`` is part of every identity as what it resolves to, so a CPU without native
bf16 plans fp32 jobs and does not see a study recorded at bf16 (on a native-bf16 CPU or a GPU),
and a native-bf16 CPU does not see one recorded at fp32: :func:`precision_note` says so, with
how many of the jobs are recorded at the other precision and how to resume them.
"""

from __future__ import annotations

from dataclasses import replace

from flatness.precision import NATIVE_BF16_ENV
from flatness.scales import Scale
from flatness.study.context import StudySpec, device_kind
from flatness.study.estimates import PlannedJob, job_estimates, planned_jobs, wall_time_s
from flatness.study.executors import closure, scan_stored
from flatness.study.jobs import DatasetJob, Job
from flatness.study.reproduce import default_plans

__all__ = ["PlannedJob", "job_estimates", "plan", "plan_table", "precision_note", "study_jobs",
           "wall_time_s"]


def study_jobs(spec: StudySpec, names: list[str] | None = None) -> dict[str, list[Job]]:
    """Each selected chapter's jobs (default parameters at ``spec``'s scale), in study order."""
    return {c.name: c.jobs(spec, params) for c, params in default_plans(spec, names)}


def plan(spec: StudySpec, names: list[str] | None = None) -> list[PlannedJob]:
    """Every job of the selected chapters and their dependencies, once, dependencies first."""
    ctx = spec.open()
    planned: list[PlannedJob] = []
    seen: set[str] = set()
    source_models: set[str] = set()  # derived datasets share source models: count each once
    for chapter, jobs in study_jobs(spec, names).items():
        ordered = closure(jobs, spec)
        _, stored = scan_stored(ordered, spec, ctx)
        fresh = [job for job in ordered if job.key() not in seen]
        seen.update(job.key() for job in fresh)
        for job, row in zip(fresh, planned_jobs(fresh, spec, stored, chapter)):
            extra = _source_model_s(job, stored.get(job.key()), source_models)
            planned.append(replace(row, compute_s=row.compute_s + extra) if extra else row)
    return planned


def precision_note(scale: Scale, spec: StudySpec, planned: list[PlannedJob] | None = None,
                   names: list[str] | None = None) -> str | None:
    """Where ``scale`` asks for precision ``auto`` and ``spec`` (its study on this CPU)
    resolved it to one precision while more of the selected chapters' jobs are stored at the
    other: a line saying how many, and how to resume them here; else None (``planned``, this
    machine's plan, made here when not given). A chapter computed at one precision is resumed
    at that precision, since each precision trains its own runs (its identities hold it)."""
    here = spec.scale.precision
    if scale.precision != "auto" or device_kind(spec.device) != "cpu":
        return None
    other = "bf16" if here == "fp32" else "fp32"
    if planned is None:
        planned = plan(spec, names)
    elsewhere = plan(replace(spec, scale=replace(spec.scale, precision=other)), names)
    recorded, cached_here = sum(job.cached for job in elsewhere), sum(j.cached for j in planned)
    if recorded <= cached_here:
        return None
    why, computed_on, cost, elsewise = _RESUMING[here]
    return (f"note: precision auto resolves to {here} on this CPU ({why}), so its jobs are "
            f"{here} ones; {recorded} of these {len(elsewhere)} jobs are stored at {other} "
            f"(computed on {computed_on}). To resume that study here, set {NATIVE_BF16_ENV}="
            f"{int(other == 'bf16')} ({cost}: benchmarks/train_throughput.py --cpu-bf16)"
            f"{elsewise}.")


#: :func:`precision_note`'s words by the precision ``auto`` resolved to on this CPU: why,
#: where the other precision's jobs were computed, what resuming them here costs, and where
#: else they resume
_RESUMING = {
    "fp32": ("no native bf16", "a native-bf16 CPU or a GPU",
             "bf16 is emulated on such a CPU, about 11x slower than fp32",
             ", or run it on a native-bf16 CPU"),
    "bf16": ("native bf16", "a CPU without native bf16",
             "fp32 trains about 1.7x slower than bf16 on such a CPU", ""),
}


def _source_model_s(job: Job, output: dict | None, counted: set[str]) -> float:
    """A stored derived dataset's source-model training time, the first time that model is
    met (``counted`` records it), else 0."""
    if not isinstance(job, DatasetJob) or output is None:
        return 0.0
    source = output.get("source_run")
    if source in counted:
        return 0.0
    counted.add(source)
    return float(output.get("source_model_wall_s") or 0.0)


def plan_table(planned: list[PlannedJob], workers: int | None = None) -> str:
    """Per chapter and kind: jobs, cached, to run, the compute the cached ones recorded, and an
    estimate for the rest (see the module docstring; ``?`` where nothing goes by); with
    ``workers``, a last line with the wall time as that many workers."""
    groups: dict[tuple[str, str], list[PlannedJob]] = {}
    for job in planned:
        groups.setdefault((job.chapter, job.kind), []).append(job)
    costs = job_estimates(planned)
    header = (f"{'chapter':18s} {'kind':11s} {'jobs':>5s} {'cached':>7s} {'to run':>7s} "
              f"{'recorded h':>11s} {'to run h':>9s}")
    rows, estimates = [], []
    for (chapter, kind), jobs in groups.items():
        estimate = _sum([costs[id(job)] for job in jobs if not job.cached])
        estimates.append(estimate)
        rows.append(_line(chapter, kind, jobs, estimate))
    total = _sum(estimates)
    rule = "-" * len(header)
    lines = [header, rule, *rows, rule, _line("total", "", planned, total)]
    if workers is not None:
        unknown = sum(costs[id(job)] is None for job in planned)
        wall = wall_time_s(planned, workers, unknown_s=0.0, costs=costs)
        amount = (f"about {wall / 3600:.2f} h" if not unknown else
                  f"at least {wall / 3600:.2f} h ({unknown} jobs without an estimate count 0)")
        lines.append(f"as {workers} worker(s): {amount} of wall time still to run (each job at "
                     f"its estimate, in the order and dependencies of reproduce --workers "
                     f"{workers})")
    return "\n".join(lines)


def _sum(values: list[float | None]) -> float | None:
    return None if None in values else sum(v for v in values if v is not None)


def _line(chapter: str, kind: str, jobs: list[PlannedJob], estimate: float | None) -> str:
    cached = sum(j.cached for j in jobs)
    recorded = sum(j.compute_s for j in jobs) / 3600
    todo = "?" if estimate is None else f"{estimate / 3600:.2f}"
    return (f"{chapter:18s} {kind:11s} {len(jobs):5d} {cached:7d} {len(jobs) - cached:7d} "
            f"{recorded:11.2f} {todo:>9s}")
