"""Running the study's job graph: in this process, in worker processes on this machine, or as
Ray tasks on an existing cluster.

Every executor runs the same cached jobs. In-process, jobs run one at a time in dependency
order. With ``workers`` > 1, a pool of spawned processes runs them side by side, each job as
soon as the jobs it reads are finished, earlier jobs of the order first; each worker keeps one
study context (its data and targets loaded once) and ``cpu_count // workers`` threads. One
command then keeps a machine busy without splitting the chapters by hand between commands (the
store's file locks keep any job from being computed twice, also across commands). On 2 CPU
cores two single-thread workers train about as fast as one two-thread process
(``benchmarks/workers.py``: 0.87x to 1.11x); a GPU, which one small surrogate leaves mostly
idle, is where several workers should pay (``--device cuda``, not measured yet).

With Ray, each job becomes a task whose arguments include its dependencies' object
references, so Ray starts it once they are done, on a worker that requests one GPU when the
study runs on CUDA; outputs land in the shared cache directory (``FLATNESS_CACHE`` must name
storage every worker sees).

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
from flatness.study.estimates import expected_seconds, planned_jobs
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
    return scan_stored(ordered, spec, ctx)[0]


def scan_stored(ordered: list[Job], spec: StudySpec, ctx: StudyContext
                ) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """One pass over ``ordered`` (dependencies first), reading each job's stored output once:
    the keys whose files must exist here (:func:`files_needed`), and the outputs already
    stored (cache, or ledger where their files are not needed), by key. A run counts the
    stored ones as done before it starts, so that its estimate of what remains follows the
    jobs it computes, not the ones it reads in no time."""
    needed: set[str] = set()
    stored: dict[str, dict[str, Any]] = {}
    for job in reversed(ordered):  # every job before the jobs it reads: its `needed` is final
        output = job.cached_output(ctx, files=job.key() in needed)
        if output is None:
            needed.update(dep.key() for dep in job.deps(spec) if dep.artifacts)
        else:
            stored[job.key()] = output
    return needed, stored


def _study_progress(ordered: list[Job], spec: StudySpec, stored: dict[str, dict[str, Any]],
                    progress: bool | None, workers: int = 1) -> tuple[Progress, dict[str, float]]:
    """The study's progress: its stored jobs done before it starts, the others weighed by
    their expected seconds (:mod:`flatness.study.estimates`), so that a training run counts
    for more than an attack in the estimate of what remains; the jobs' own run times against
    their expected seconds give the pace (``workers`` at once)."""
    expected = expected_seconds(planned_jobs(ordered, spec, stored))
    bar = Progress(len(ordered), "study", "job", progress=progress, initial=len(stored),
                   work_total=sum(expected.values()), parallel=workers)
    return bar, expected


def _advance(bar: Progress, job: Job, output: dict[str, Any], expected: dict[str, float],
             started: float) -> None:
    """Report a job computed here, started at ``started``. The pace counts the compute its
    ``output`` records, the measure its estimate was made from: a training run resumed at its
    last epoch records every epoch's time, where the seconds since ``started`` would count a
    whole run for the last few epochs (after a restart the study read 1h13m left, not 7.7 h)."""
    took = time.perf_counter() - started
    bar.advance(note=f"{took:.1f} s  {job.label}", work=expected.get(job.key(), 0.0),
                took=job.compute_time_s(output) or took)


def run_jobs(jobs: Iterable[Job], spec: StudySpec, *, executor: str = "local",
             address: str | None = None, progress: bool | None = None,
             workers: int = 1) -> dict[str, Any]:
    """Run ``jobs`` (and what they depend on); return each job's output by key. ``workers``
    > 1 runs the local executor's jobs in that many processes."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise FlatnessError(f"workers must be an integer >= 1, got {workers!r}")
    if workers > 1 and executor != "local":
        raise FlatnessError(f"workers is the local executor's; the {executor} executor "
                            "schedules its own")
    ordered = closure(jobs, spec)
    if executor == "local":
        if workers > 1:
            return _run_processes(ordered, spec, workers, progress)
        return _run_local(ordered, spec, progress)
    if executor == "ray":
        return _run_ray(ordered, spec, address, progress)
    raise FlatnessError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")


def _run_local(ordered: list[Job], spec: StudySpec, progress: bool | None) -> dict[str, Any]:
    ctx = spec.open()
    needed, stored = scan_stored(ordered, spec, ctx)
    bar, expected = _study_progress(ordered, spec, stored, progress)
    outputs = dict(stored)
    with bar:
        for job in ordered:
            if job.key() in stored:
                continue
            started = time.perf_counter()
            outputs[job.key()] = job.run(ctx, files=job.key() in needed)
            _advance(bar, job, outputs[job.key()], expected, started)
    return {job.key(): outputs[job.key()] for job in ordered}


#: The study context of a worker process (:func:`_start_worker`), reused by all its jobs.
_WORKER_CONTEXT: StudyContext | None = None


def _start_worker(spec: StudySpec, threads: int) -> None:
    global _WORKER_CONTEXT
    import threading

    import torch

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(threads)
    _WORKER_CONTEXT = spec.open()


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Stop this worker once the study that started it is gone (killed: no cleanup ran), so
    that no orphan keeps a CPU and a job's lock; the job resumes from its cache next time."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _worker_task(job: Job, files: bool) -> dict[str, Any]:
    """Body of one job in a worker process: the jobs it reads are finished (in the cache)."""
    assert _WORKER_CONTEXT is not None, "the worker was not started by _start_worker"
    return job.run(_WORKER_CONTEXT, files=files)


def worker_threads(workers: int) -> int:
    """Threads per worker process: ``OMP_NUM_THREADS`` when set, else the CPUs shared out."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // workers)


def _run_processes(ordered: list[Job], spec: StudySpec, workers: int,
                   progress: bool | None) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    ctx = spec.open()
    needed, stored = scan_stored(ordered, spec, ctx)
    reads = {job.key(): {dep.key() for dep in job.deps(spec)} for job in ordered}
    waiting, outputs = list(ordered), {}
    running: dict[Future, tuple[Job, float]] = {}
    failed: list[str] = []
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(spec, worker_threads(workers)))
    bar, expected = _study_progress(ordered, spec, stored, progress, workers)
    with pool, bar:

        def start_ready() -> None:
            """Stored jobs are read here; the first jobs whose inputs are done go to idle
            workers (never more at once than there are workers, so the order is kept). One
            pass suffices: a job comes after the jobs it reads, so a job read here readies
            only later ones."""
            for job in list(waiting):
                if len(running) >= workers or failed:
                    return
                if not all(key in outputs for key in reads[job.key()]):
                    continue
                waiting.remove(job)
                files = job.key() in needed
                cached = (stored[job.key()] if job.key() in stored
                          else job.cached_output(ctx, files))
                if cached is None:
                    running[pool.submit(_worker_task, job, files)] = (job, time.perf_counter())
                    continue
                outputs[job.key()] = cached
                if job.key() not in stored:  # stored meanwhile, by another command
                    bar.advance(note=f"0.0 s  {job.label}", work=expected.get(job.key(), 0.0))

        start_ready()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job, started = running.pop(future)
                try:
                    outputs[job.key()] = future.result()
                except Exception as exc:  # the others finish (their outputs are kept)
                    failed.append(f"{job.label}: {type(exc).__name__}: {exc}")
                    continue
                _advance(bar, job, outputs[job.key()], expected, started)
            start_ready()
    if failed:
        raise FlatnessError(f"{len(failed)} job(s) failed in a worker process (the finished "
                            f"ones are cached; rerun to resume): {'; '.join(failed)}")
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
