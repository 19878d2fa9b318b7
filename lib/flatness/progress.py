"""Progress of long work: a bar on a terminal, one line per unit in a log, nothing in a notebook.

Every long command (train, attack, sharpness, landscape, robust-datasets, targets, reproduce)
reports each unit of work (an epoch, a batch of images, a job) through :class:`Progress` or
:func:`track`. On a terminal that is a tqdm bar; when stderr is a file (``... > run.log 2>&1``)
it is one line per unit with the elapsed time and an estimate of what remains, so a log shows
a run's progress too; inside a Jupyter kernel (a chapter executed by papermill) it is silent,
so the book holds no bars. Work nested in other work (a job's epochs) indents its lines and
writes at most one every ``NESTED_INTERVAL_S`` seconds, so a study's log stays readable (short
nested work, such as a few batches of an attack inside a job, writes none).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

#: Nested progress (an epoch inside a job) writes a line at most this often (and at its end).
NESTED_INTERVAL_S = 30.0

_depth = 0  # how many Progress are open: nested ones indent and throttle their lines


def mode(progress: bool | None, stream: TextIO | None = None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` for a ``progress`` choice (``None``: automatic).

    ``False`` is off; otherwise a terminal gets a bar and any other stream lines, except that
    automatic progress is off inside a Jupyter kernel.
    """
    if progress is False or (progress is None and "ipykernel" in sys.modules):
        return "off"
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def duration(seconds: float) -> str:
    """``42s``, ``3m07s`` or ``2h05m``: short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts units of work done out of ``total`` and reports each (see the module docstring).

    ``initial`` units were done before (a resumed run): they count towards the total but not
    towards the rate, so the estimate of what remains uses this session's speed only.

    Units of unequal size (a study's jobs: a training run, an attack) can carry their
    expected ``work`` (any unit, e.g. estimated seconds): with ``work_total``, the work still
    to do at the rate measured on the work done gives the estimate, instead of the count.
    Units that also report the seconds they ``took`` (each job its own run time) give a rate
    that units still running cannot skew: the work left at the seconds per unit of work the
    timed units took, shared by ``parallel`` workers. (Elapsed time over work done counts a
    long job in flight as time without work, and swings by hours when it finishes.)
    """

    def __init__(self, total: int | None, desc: str, unit: str, *, initial: int = 0,
                 progress: bool | None = None, stream: TextIO | None = None,
                 every_s: float | None = None, work_total: float | None = None,
                 parallel: int = 1) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self.initial = initial
        self.work_total, self.work_done = work_total, 0.0
        self.parallel = max(1, parallel)
        self._timed_s = self._timed_work = 0.0  # seconds the timed units took, and their work
        self.stream = stream if stream is not None else sys.stderr
        self.mode = mode(progress, self.stream)
        self.started = self._last_line = time.perf_counter()
        self._bar: Any = None
        self._closed = False
        global _depth
        self.depth = _depth
        _depth += 1
        # seconds between two log lines: every unit at the top level, throttled when nested
        self.every_s = every_s if every_s is not None else (
            0.0 if self.depth == 0 else NESTED_INTERVAL_S)
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                             file=self.stream, leave=self.depth == 0, position=self.depth,
                             dynamic_ncols=True)

    def line(self, note: str = "") -> str:
        """The log line for the current state: count, elapsed time, estimate of what remains."""
        elapsed = time.perf_counter() - self.started
        count = f"{self.unit} {self.done}" + (f"/{self.total}" if self.total else "")
        text = f"{'  ' * self.depth}{self.desc}: {count}, {duration(elapsed)} elapsed"
        fresh = self.done - self.initial
        work_left = max(0.0, (self.work_total or 0.0) - self.work_done)
        if self.work_total and self._timed_work > 0:
            left = self._timed_s / self._timed_work * work_left / self.parallel
            text += f", ~{duration(left)} left"
        elif self.work_total and self.work_done > 0:
            text += f", ~{duration(elapsed / self.work_done * work_left)} left"
        elif self.total and fresh > 0:
            text += f", ~{duration(elapsed / fresh * max(0, self.total - self.done))} left"
        return text + (f"  {note}" if note else "")

    def advance(self, n: int = 1, note: str = "", work: float = 0.0,
                took: float | None = None) -> None:
        """``n`` more units are done, ``work`` of the ``work_total``, in ``took`` seconds of
        their own (None: not timed, e.g. read from a cache); ``note`` describes the last one
        (a loss, a job's label)."""
        self.done += n
        self.work_done += work
        if took is not None and work > 0:
            self._timed_s += took
            self._timed_work += work
        if self.mode == "bar":
            if note:
                self._bar.set_postfix_str(note[:60], refresh=False)
            self._bar.update(n)
        elif self.mode == "lines":
            now = time.perf_counter()
            last = self.depth == 0 and self.total is not None and self.done >= self.total
            if last or now - self._last_line >= self.every_s:
                print(self.line(note), file=self.stream, flush=True)
                self._last_line = now

    def close(self) -> None:
        """Remove the bar (nested ones) and let the next Progress sit at this one's depth."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        global _depth
        _depth = max(0, _depth - 1)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], desc: str, unit: str, *, total: int | None = None,
          progress: bool | None = None, every_s: float | None = None) -> Iterator[T]:
    """Yield ``items``, reporting one unit of work after each (``total``: len(items) if any)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, progress=progress, every_s=every_s) as bar:
        for item in items:
            yield item
            bar.advance()
