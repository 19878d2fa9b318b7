"""What a study's jobs still cost: each job's expected seconds from the jobs already stored,
and the wall time of the rest as N workers.

A job still to run costs what its stored siblings on other seeds recorded (the same work,
:meth:`Job.work_key`), else its work (:meth:`Job.work_units`) at the rate the stored jobs of
its kind recorded, else at the rate of the kind it is priced as (:attr:`Job.priced_as`: an LGV
collection at training's, a robustness check at the attacks'), else the mean of its chapter's
stored jobs of its kind; nothing to go by gives no estimate. :mod:`flatness.study.plan` prints
these before a run; the executors weigh a running study's progress with them, so its estimate
of what remains counts a training run as more than an attack.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from flatness.study.jobs import Job


@dataclass(frozen=True)
class PlannedJob:
    """One job of the study: the chapter that first needs it, and whether it is cached."""

    chapter: str
    kind: str
    label: str
    cached: bool
    compute_s: float  # recorded by the cached output; 0 for a job still to run
    work: str = ""  # Job.work_key: the same work on other seeds
    units: float | None = None  # Job.work_units: the size of that work
    key: str = ""  # Job.key
    reads: tuple[str, ...] = ()  # the keys of the jobs it reads (Job.deps)
    priced_as: str | None = None  # Job.priced_as: whose rate prices its units, failing its own


def planned_jobs(ordered: list[Job], spec: Any, stored: dict[str, dict[str, Any]],
                 chapter: str = "") -> list[PlannedJob]:
    """``ordered`` as planned jobs (``stored``: the outputs of those already done, by key)."""
    return [PlannedJob(chapter, job.kind, job.label, job.key() in stored,
                       job.compute_time_s(stored[job.key()]) if job.key() in stored else 0.0,
                       job.work_key(), job.work_units(spec), job.key(),
                       tuple(dep.key() for dep in job.deps(spec)), job.priced_as)
            for job in ordered]


def expected_seconds(planned: list[PlannedJob]) -> dict[str, float]:
    """Seconds each job still to run is expected to take, by key; a job without an estimate
    counts the mean of those with one (1 s when none has one, so that units still weigh)."""
    costs = job_estimates(planned)
    todo = [job for job in planned if not job.cached]
    known = [costs[id(job)] for job in todo if costs[id(job)] is not None]
    fallback = sum(known) / len(known) if known else 1.0
    return {job.key: fallback if costs[id(job)] is None else costs[id(job)] for job in todo}


def job_estimates(planned: list[PlannedJob]) -> dict[int, float | None]:
    """Seconds each job still costs, by ``id`` of its PlannedJob: 0 when cached; else its
    cached siblings' mean (other seeds, any chapter), else its work at its kind's rate (or
    its ``priced_as`` kind's), else the mean of its chapter's cached jobs of its kind; None:
    nothing to go by."""
    siblings: dict[str, list[float]] = {}
    group_cached: dict[tuple[str, str], list[float]] = {}
    for job in planned:
        if job.cached:
            group_cached.setdefault((job.chapter, job.kind), []).append(job.compute_s)
            if job.work:
                siblings.setdefault(job.work, []).append(job.compute_s)
    rates = _rates(planned)
    costs: dict[int, float | None] = {}
    for job in planned:
        same_work = siblings.get(job.work) if job.work else None
        cached = group_cached.get((job.chapter, job.kind))
        rate = rates.get(job.kind, rates.get(job.priced_as or ""))
        if job.cached:
            costs[id(job)] = 0.0
        elif same_work:
            costs[id(job)] = sum(same_work) / len(same_work)
        elif rate is not None and job.units:
            costs[id(job)] = job.units * rate
        elif cached:
            costs[id(job)] = sum(cached) / len(cached)
        else:
            costs[id(job)] = None
    return costs


def wall_time_s(planned: list[PlannedJob], workers: int, unknown_s: float | None = None,
                costs: dict[int, float | None] | None = None) -> float | None:
    """The wall time of the jobs still to run as ``workers`` workers: a simulation of
    ``reproduce --workers``'s schedule (a cached job is read at once; a free worker takes the
    earliest job whose inputs are done) with each job at its estimate. A job without one
    costs ``unknown_s``; None (the default) makes the whole answer None. With one worker it
    is the total of the estimates. ``costs``: :func:`job_estimates` of ``planned``, when the
    caller has them already."""
    costs = job_estimates(planned) if costs is None else costs
    if any(cost is None for cost in costs.values()):
        if unknown_s is None:
            return None
        costs = {k: unknown_s if cost is None else cost for k, cost in costs.items()}
    waiting = list(planned)  # dependencies first: one pass in order starts all that is ready
    done: set[str] = set()
    running: list[tuple[float, int, str]] = []  # (end, order, key)
    now = 0.0
    while waiting or running:
        for order, job in enumerate(list(waiting)):
            if len(running) >= workers:
                break
            if all(key in done for key in job.reads):
                waiting.remove(job)
                cost = costs[id(job)] or 0.0
                if cost == 0.0:
                    done.add(job.key)
                else:
                    heapq.heappush(running, (now + cost, order, job.key))
        if not running:
            break  # nothing runs and nothing is ready: it reads a job outside the plan
        now, _, key = heapq.heappop(running)
        done.add(key)
    return now


def _rates(planned: list[PlannedJob]) -> dict[str, float]:
    """Seconds per work unit of each kind, over its cached jobs that recorded both."""
    seconds: dict[str, float] = {}
    units: dict[str, float] = {}
    for job in planned:
        if job.cached and job.units and job.compute_s > 0:
            seconds[job.kind] = seconds.get(job.kind, 0.0) + job.compute_s
            units[job.kind] = units.get(job.kind, 0.0) + job.units
    return {kind: seconds[kind] / units[kind] for kind in seconds}


