"""The study: chapters as graphs of cached jobs, run in-process or on Ray.

- :mod:`flatness.study.jobs`: training, transfer, sharpness, landscape and LGV jobs.
- :mod:`flatness.study.executors`: :func:`run_jobs` (``local``, in this process or in
  ``workers`` processes, or ``ray``).
- :mod:`flatness.study.chapter`: :func:`chapter_result`, what the notebooks call.
- :mod:`flatness.study.chapters`: each chapter's design, one module per chapter.
- :mod:`flatness.study.analysis`: each chapter's analysis, one module per chapter.

A chapter ``<name>`` is three modules, each with one job, imported one way (plots -> analysis
-> design):

- ``study/chapters/<name>.py``, its *design*: the parameters (``defaults``, ``validate``), the
  jobs they imply (``jobs`` and the functions that build each job), and ``CHAPTER``, which
  names its summary with ``AnalysisSummary("<name>")`` rather than importing it.
- ``study/analysis/<name>.py``, its *analysis*: ``summarize(ctx, params, outputs)``, the job
  outputs to the summary (each output found by its job's key, built by the design), and
  ``claims(data, scale)``, the summary to the paper's claims.
- ``plots/<name>.py``: its figures and markdown tables, from the summary; the notebook only
  passes parameters to ``chapter_result(CHAPTER, ...)`` and shows what these return.
"""

from flatness.study.chapter import Chapter, chapter_result, committed_path, results_root
from flatness.study.chapters import chapters, get_chapter
from flatness.study.context import StudyContext, StudySpec
from flatness.study.executors import run_jobs

__all__ = ["Chapter", "StudyContext", "StudySpec", "chapter_result", "chapters",
           "committed_path", "get_chapter", "results_root", "run_jobs"]
