"""The study: chapters as graphs of cached jobs, run in-process or on Ray.

- :mod:`flatness.study.jobs`: training, transfer, sharpness, landscape and LGV jobs.
- :mod:`flatness.study.executors`: :func:`run_jobs` (``local`` or ``ray``).
- :mod:`flatness.study.chapter`: :func:`chapter_result`, what the notebooks call.
- :mod:`flatness.study.chapters`: one module per chapter.
"""

from flatness.study.chapter import Chapter, chapter_result, committed_path, results_root
from flatness.study.chapters import chapters, get_chapter
from flatness.study.context import StudyContext, StudySpec
from flatness.study.executors import run_jobs

__all__ = ["Chapter", "StudyContext", "StudySpec", "chapter_result", "chapters",
           "committed_path", "get_chapter", "results_root", "run_jobs"]
