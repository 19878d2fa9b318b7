"""A chapter of the book as data: its parameters, the jobs it needs, and its summary result.

:func:`chapter_result` is what a chapter notebook calls. It returns, in order of preference,
the committed result (``results/<scale>/<chapter>.json``) when it was made with the same
parameters and still describes what the code computes (same scale definition, same jobs: see
:func:`staleness`), a cached result, or a freshly computed one (always when ``recompute=True``).
Every result records the parameters, the scale, the seeds, the data copy and the provenance
(commit, device and its kind, the resolved precision, wall time of all jobs involved), which
the book shows beside each figure.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flatness.errors import FlatnessError
from flatness.io import to_jsonable
from flatness.paths import repo_root
from flatness.provenance import code_commit, provenance
from flatness.results import Result, read_result, write_result
from flatness.scales import Scale, get_scale
from flatness.store import entry_path, key_of, locked
from flatness.study.context import StudyContext, StudySpec, device_kind
from flatness.study.executors import closure, run_jobs
from flatness.study.jobs import Job

RESULT_KIND = "chapter"


@dataclass(frozen=True)
class Chapter:
    """One chapter: default parameters at a scale, its jobs, and how to summarise them (its
    design's ``defaults``, ``validate`` and ``jobs``; its analysis's ``summarize``)."""

    name: str
    title: str
    notebook: str
    defaults: Callable[[Scale], dict[str, Any]]
    jobs: Callable[[StudySpec, dict[str, Any]], list[Job]]
    summarize: Callable[[StudyContext, dict[str, Any], dict[str, Any]], dict[str, Any]]
    validate: Callable[[dict[str, Any]], None] = lambda params: None
    #: Raised when the summary's fields or their rules change (its jobs unchanged): committed
    #: results of an older version are stale, not rendered by code that expects other fields.
    summary_version: int = 1

    def parameters(self, scale: Scale, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults at ``scale`` updated with ``overrides`` (unknown names are errors)."""
        params = self.defaults(scale)
        unknown = sorted(set(overrides or {}) - set(params))
        if unknown:
            raise FlatnessError(f"chapter {self.name!r} has no parameter {', '.join(unknown)}; "
                                f"it takes: {', '.join(sorted(params))}")
        params.update({k: v for k, v in (overrides or {}).items() if v is not None})
        params = to_jsonable(params)
        self.validate(params)
        return params


@dataclass(frozen=True)
class AnalysisSummary:
    """``summarize`` of :mod:`flatness.study.analysis.<chapter>`, imported when called: an
    analysis imports its chapter's design (it finds each job's output by the job's key), so the
    design names its summary without importing it, and the imports stay one-way."""

    chapter: str

    def __call__(self, ctx: StudyContext, params: dict[str, Any], outputs: dict[str, Any]
                 ) -> dict[str, Any]:
        analysis = importlib.import_module(f"flatness.study.analysis.{self.chapter}")
        return analysis.summarize(ctx, params, outputs)


def results_root() -> Path:
    """Committed results: ``FLATNESS_RESULTS`` or the checkout's ``results/`` folder."""
    return Path(os.environ.get("FLATNESS_RESULTS", repo_root() / "results"))


def committed_path(chapter: str, scale: str) -> Path:
    return results_root() / scale / f"{chapter}.json"


#: Scales whose committed results the book prefers, largest first.
PUBLISHED_SCALES = ("paper", "gpu", "cpu")


def jobs_hash(spec: StudySpec, jobs: list[Job]) -> str:
    """One hash of what ``jobs`` compute at ``spec``'s scale (each job with, recursively, the
    jobs it reads; :meth:`Job.inputs_hash`), independent of their order and of the data copy."""
    return key_of(sorted(job.inputs_hash(spec) for job in jobs))


def recorded_spec(scale: Scale, result: Result) -> StudySpec:
    """The spec ``result`` was planned with: ``scale`` on the device kind it records, ``auto``
    read as the precision it records (so a result made in fp32 on a CPU still describes what
    the code computes where ``auto`` would mean bf16). Results without them: this machine."""
    prov = result.provenance
    if scale.precision == "auto" and prov.get("precision"):
        scale = dataclasses.replace(scale, precision=prov["precision"])
    return StudySpec(scale, device=prov.get("device_kind"))


#: Sections of a scale that only their own chapter reads: redesigning the regime map leaves
#: the other chapters' committed results current (a test checks that none of them reads it).
PRIVATE_SECTIONS = {"regimes": "regimes"}


def _design_read_by(chapter: str, scale: dict[str, Any]) -> dict[str, Any]:
    """The scale's definition as ``chapter`` reads it: without other chapters' private
    sections."""
    return {k: v for k, v in scale.items() if PRIVATE_SECTIONS.get(k, chapter) == chapter}


def staleness(chapter: str, scale: Scale, result: Result) -> str | None:
    """Why a committed ``result`` of ``chapter`` no longer describes what the code computes at
    ``scale`` (None when it does): another chapter, another definition of the scale, or jobs
    the code now defines differently for the result's own parameters (a retuned recipe)."""
    from flatness.study.chapters import get_chapter  # the registry imports this module

    if result.config.get("chapter") != chapter:
        return f"it is a result of chapter {result.config.get('chapter')!r}"
    version, current = result.config.get("summary_version", 1), get_chapter(chapter)
    if version != current.summary_version:
        return (f"its summary has version {version} of the chapter's format, the code "
                f"writes version {current.summary_version}")
    spec = recorded_spec(scale, result)
    stored = result.config.get("scale")
    if stored is not None and (_design_read_by(chapter, stored)
                               != _design_read_by(chapter, to_jsonable(spec.scale.to_dict()))):
        return f"the {scale.name} scale was redefined since it was computed"
    stored_jobs = result.config.get("jobs_hash")
    if stored_jobs is not None:
        try:
            planned = current.jobs(spec, result.config.get("params", {}))
        except (FlatnessError, KeyError, TypeError, ValueError) as exc:
            return f"its parameters no longer fit the chapter ({type(exc).__name__}: {exc})"
        if stored_jobs != jobs_hash(spec, planned):
            return "the code defines its jobs differently since it was computed"
    return None


def _committed(chapter: str, scale: Scale) -> tuple[Result, str | None] | None:
    """The committed result of ``chapter`` at ``scale`` and why it is stale (None: current);
    None when there is no such file."""
    path = committed_path(chapter, scale.name)
    if not path.is_file():
        return None
    result = read_result(path, kind=RESULT_KIND)
    return result, staleness(chapter, scale, result)


def committed_result(chapter: str, scale: Scale) -> Result | None:
    """The committed result of ``chapter`` at ``scale``, if it still describes what the code
    computes (see :func:`staleness`; a stale result is not served)."""
    found = _committed(chapter, scale)
    return found[0] if found is not None and found[1] is None else None


def stale_results(chapter: str) -> dict[str, str]:
    """Why each published scale's committed result of ``chapter`` is not served, for the scales
    whose result is stale (see :func:`staleness`); empty when none is."""
    found = {name: _committed(chapter, get_scale(name)) for name in PUBLISHED_SCALES}
    return {name: f[1] for name, f in found.items() if f is not None and f[1] is not None}


def resolve_scale(chapter: str, scale: str | Scale) -> str | Scale:
    """``"auto"``: the largest scale with a committed result for ``chapter`` computed with that
    scale's current definition, else smoke."""
    if scale != "auto":
        return scale
    for name in PUBLISHED_SCALES:
        if committed_result(chapter, get_scale(name)) is not None:
            return name
    return "smoke"


def chapter_result(chapter: Chapter, scale: str | Scale = "smoke",
                   params: dict[str, Any] | None = None, *, data: str | os.PathLike | None = None,
                   device: str | None = None, recompute: bool = False, executor: str = "local",
                   address: str | None = None, publish: bool = False,
                   compile: bool = False) -> Result:
    """The chapter's result: committed, cached, or computed (see the module docstring).

    ``scale="auto"`` picks the largest scale with a committed result (see
    :func:`resolve_scale`), so the book shows gpu results where they exist, cpu otherwise.

    ``publish=True`` also writes the computed result to ``results/<scale>/`` (what the
    ``chapter`` command does on a GPU box before the files are committed). ``compile`` trains
    its surrogates ``torch.compile``-d, an execution option that changes no key.
    """
    definition = get_scale(resolve_scale(chapter.name, scale))  # precision unresolved
    spec = StudySpec.create(definition, data, device, compile=compile)
    explicit = to_jsonable({k: v for k, v in (params or {}).items() if v is not None})
    params = chapter.parameters(spec.scale, params)
    committed = committed_path(chapter.name, spec.scale.name)
    if not recompute:
        result = committed_result(chapter.name, definition)
        # publishing computes the parameters asked for, defaults included: a committed result
        # of other parameters (a partial map, say) is not published again in their place
        wanted = to_jsonable(params) if publish else explicit
        if result is not None and _matches(result, wanted):
            return result
    ctx = spec.open()
    # the code commit is part of the key: a changed summary is recomputed (its jobs are cached)
    key = key_of({"chapter": chapter.name, "params": params, "scale": spec.scale.to_dict(),
                  "data": ctx.data_source, "code": code_commit()})
    cached = entry_path(f"results/{spec.scale.name}", f"{chapter.name}-{key}")
    with locked(cached):  # a second process asking for the same result waits, then reads it
        if not recompute and cached.is_file():
            result = read_result(cached, kind=RESULT_KIND)
        else:
            result = _compute(chapter, spec, ctx, params, executor, address)
            write_result(cached, result)
    if publish:
        write_result(committed, result)
    return result


def _compute(chapter: Chapter, spec: StudySpec, ctx: StudyContext, params: dict[str, Any],
             executor: str, address: str | None) -> Result:
    """Run the chapter's jobs and summarise them into a result with its provenance."""
    started = time.perf_counter()
    jobs = chapter.jobs(spec, params)
    outputs = run_jobs(jobs, spec, executor=executor, address=address)
    data = chapter.summarize(ctx, params, outputs)
    every_job = closure(jobs, spec)  # dependencies included: the compute behind the result
    result = Result(
        kind=RESULT_KIND,
        scale=spec.scale.name,
        config={"chapter": chapter.name, "params": params, "scale": spec.scale.to_dict(),
                "jobs_hash": jobs_hash(spec, jobs), "summary_version": chapter.summary_version},
        data=to_jsonable(data),
        seeds=list(params.get("seeds", [])),
        data_copy=ctx.data_source,
        provenance=provenance(ctx.device, wall_time_s=round(time.perf_counter() - started, 1),
                              compute_time_s=round(_compute_time(every_job, outputs), 1),
                              jobs=len(every_job), executor=executor,
                              compute_devices=compute_devices(every_job, outputs),
                              precision=spec.scale.precision,
                              device_kind=device_kind(spec.device),
                              target_accuracy=target_accuracy(outputs, spec.scale)),
    )
    return result


def _matches(result: Result, explicit: dict[str, Any]) -> bool:
    """A committed result serves a request when every parameter the reader set explicitly has
    the same value in it; parameters left at their defaults take the committed design (which
    the chapter shows in its provenance table)."""
    committed = result.config.get("params", {})
    return all(committed.get(k) == v for k, v in explicit.items())


def compute_devices(jobs: list[Job], outputs: dict[str, Any]) -> dict[str, int]:
    """How many of ``jobs`` each device computed, as their outputs record it (a training run's
    provenance, another job's ``device``); jobs computed before outputs named their device count
    as ``"unrecorded"``. The summary's own ``device`` is only the process that summarised."""
    counts: Counter[str] = Counter()
    for job in jobs:
        out = outputs.get(job.key(), {})
        device = out.get("provenance", {}).get("device") or out.get("device")
        counts[str(device or "unrecorded")] += 1
    return dict(counts.most_common())


def target_accuracy(outputs: dict[str, Any], scale: Scale) -> dict[str, float | None]:
    """Each CIFAR-10 target's final test accuracy (on the scale's evaluation subset), by name,
    for the targets among ``outputs``: the strength of the zoo a result's success rates are
    measured on, which differs between precisions (each trains its own targets)."""
    from flatness.study.jobs import TrainJob
    from flatness.study.targets import target_configs, target_name

    accuracy: dict[str, float | None] = {}
    for config in target_configs(scale):
        out = outputs.get(TrainJob(config).key())
        if out is not None:
            metrics = out.get("metrics") or []
            accuracy[target_name(config)] = metrics[-1].get("test_acc") if metrics else None
    return accuracy


def _compute_time(jobs: list[Job], outputs: dict[str, Any]) -> float:
    """Total compute time of ``jobs`` (training runs included), in seconds."""
    return sum(job.compute_time_s(outputs[job.key()]) for job in jobs)
