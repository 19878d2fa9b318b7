"""Running the study's job graph: in this process, or as Ray tasks on an existing cluster.

Both executors run the same cached jobs; neither schedules anything itself. In-process, jobs
run in dependency order. With Ray, each job becomes a task whose arguments include its
dependencies' object references, so Ray starts it once they are done, on a worker that
requests one GPU when the study runs on CUDA; outputs land in the shared cache directory
(``FLATNESS_CACHE`` must name storage every worker sees).

A job recorded in the committed ledger (:mod:`flatness.ledger`) is read, not run, except where
a job that must still compute reads its files (:func:`files_needed`): a transfer job recorded
there needs no surrogate weights, one still to attack does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from flatness.errors import FlatnessError
from flatness.progress import Progress
from flatness.study.context import StudyContext, StudySpec
from flatness.study.jobs import Job

EXECUTORS = ("local", "ray")


def closure(jobs: Iterable[Job], spec: StudySpec) -> list[Job]:
    """All jobs and their dependencies at ``spec``, each once, dependencies first."""
    ordered: list[Job] = []
    seen: set[str] = set()

    def visit(job: Job) -> None:
        key = job.key()
        if key in seen:
            return
        for dep in job.deps(spec):
            visit(dep)
        seen.add(key)
        ordered.append(job)

    for job in jobs:
        visit(job)
    return ordered


def files_needed(ordered: list[Job], spec: StudySpec, ctx: StudyContext) -> set[str]:
    """Keys of the jobs of ``ordered`` (dependencies first) whose files must exist here: the
    artifact-making dependencies (runs, datasets) of every job that has to compute."""
    needed: set[str] = set()
    for job in reversed(ordered):  # every job before the jobs it reads
        if job.cached_output(ctx, files=job.key() in needed) is None:
            needed.update(dep.key() for dep in job.deps(spec) if dep.artifacts)
    return needed


def run_jobs(jobs: Iterable[Job], spec: StudySpec, *, executor: str = "local",
             address: str | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Run ``jobs`` (and what they depend on); return each job's output by key."""
    ordered = closure(jobs, spec)
    if executor == "local":
        return _run_local(ordered, spec, progress)
    if executor == "ray":
        return _run_ray(ordered, spec, address, progress)
    raise FlatnessError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")


def _run_local(ordered: list[Job], spec: StudySpec, progress: bool | None) -> dict[str, Any]:
    ctx = spec.open()
    needed = files_needed(ordered, spec, ctx)
    outputs = {}
    with Progress(len(ordered), "study", "job", progress=progress) as bar:
        for job in ordered:
            started = time.perf_counter()
            outputs[job.key()] = job.run(ctx, files=job.key() in needed)
            bar.advance(note=f"{time.perf_counter() - started:.1f} s  {job.label}")
    return outputs


def _ray_task(job: Job, spec: StudySpec, files: bool, *dependencies: Any) -> dict[str, Any]:
    """Body of one Ray task: dependencies are finished (their outputs are in the cache)."""
    return job.run(spec.open(), files=files)


def _run_ray(ordered: list[Job], spec: StudySpec, address: str | None,
             progress: bool | None = None) -> dict[str, Any]:
    try:
        import ray
    except ImportError:
        raise FlatnessError("the ray executor needs Ray: pip install 'ray[default]'") from None
    from flatness.paths import cache_dir

    env = {"FLATNESS_CACHE": str(cache_dir())}
    if os.environ.get("FLATNESS_DATA"):
        env["FLATNESS_DATA"] = os.environ["FLATNESS_DATA"]
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": env}, ignore_reinit_error=True,
                 log_to_driver=False, include_dashboard=False)
    gpus = 1 if (spec.device or "").startswith("cuda") or (
        spec.device is None and ray.cluster_resources().get("GPU", 0) >= 1) else 0
    needed = files_needed(ordered, spec, spec.open())
    task = ray.remote(num_gpus=gpus, num_cpus=1, max_retries=1)(_ray_task)
    refs: dict[str, Any] = {}
    for job in ordered:  # dependencies come first, so their references exist
        refs[job.key()] = task.remote(job, spec, job.key() in needed,
                                      *[refs[d.key()] for d in job.deps(spec)])
    keys = list(refs)
    labels = {refs[job.key()]: job.label for job in ordered}
    pending = list(labels)
    with Progress(len(pending), "study", "job", progress=progress) as bar:
        while pending:  # one line per job as it finishes, in whatever order
            done, pending = ray.wait(pending, num_returns=1)
            bar.advance(note=labels[done[0]])
    values = ray.get([refs[k] for k in keys])
    return dict(zip(keys, values))
