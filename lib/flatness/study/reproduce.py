"""The whole study end to end: every chapter's jobs as one graph, then every chapter's result.

Jobs shared between chapters (the standard SGD surrogate, the target zoo) run once. Because
every job is cached, an interrupted ``reproduce`` resumes where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from flatness.results import Result
from flatness.scales import Scale
from flatness.study.chapter import Chapter, chapter_result
from flatness.study.chapters import select_chapters
from flatness.study.context import StudySpec
from flatness.study.executors import run_jobs


@dataclass
class ChapterSummary:
    """One line of the final table."""

    name: str
    result: Result

    def row(self) -> dict[str, Any]:
        p = self.result.provenance
        return {"chapter": self.name, "scale": self.result.scale, "jobs": p.get("jobs"),
                "compute_min": round(float(p.get("compute_time_s", 0.0)) / 60, 1),
                "device": p.get("device")}


def default_plans(spec: StudySpec, names: list[str] | None = None
                  ) -> list[tuple[Chapter, dict[str, Any]]]:
    """The selected chapters with their default parameters at ``spec``'s scale."""
    return [(c, c.parameters(spec.scale)) for c in select_chapters(names)]


def reproduce(scale: str | Scale, *, names: list[str] | None = None,
              data: str | os.PathLike | None = None, device: str | None = None,
              executor: str = "local", address: str | None = None, publish: bool = True,
              progress: bool | None = None, compile: bool = False,
              workers: int = 1) -> list[ChapterSummary]:
    """Run the study at ``scale`` and publish each chapter's result (see module docstring);
    ``compile`` trains the surrogates ``torch.compile``-d (same keys, same cache); ``workers``
    > 1 runs the local executor's jobs in that many processes."""
    spec = StudySpec.create(scale, data, device, compile=compile)
    plans = default_plans(spec, names)
    jobs = [job for chapter, params in plans for job in chapter.jobs(spec, params)]
    run_jobs(jobs, spec, executor=executor, address=address, progress=progress,
             workers=workers)
    summaries = []
    for chapter, params in plans:  # every job is cached now: summarising is cheap and local
        result = chapter_result(chapter, spec.scale, params, data=data, device=device,
                                publish=publish)
        summaries.append(ChapterSummary(chapter.name, result))
    return summaries


def summary_table(summaries: list[ChapterSummary]) -> str:
    """A plain-text table of the chapters computed."""
    rows = [s.row() for s in summaries]
    header = f"{'chapter':18s} {'scale':6s} {'jobs':>5s} {'compute min':>12s}  device"
    lines = [header, "-" * len(header)]
    lines += [f"{r['chapter']:18s} {r['scale']:6s} {r['jobs']!s:>5s} {r['compute_min']:>12}  "
              f"{r['device']}" for r in rows]
    return "\n".join(lines)
