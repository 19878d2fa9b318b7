"""Progress of long work: one line per unit with elapsed time and what remains, in a log."""

from __future__ import annotations

import io
import re
import sys

import pytest

from flatness import progress as prog
from flatness.progress import Progress, duration, mode, track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_kernel(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)


def test_mode_is_a_bar_on_a_terminal_lines_in_a_file_off_in_a_kernel(monkeypatch) -> None:
    assert mode(None, _Terminal()) == "bar"
    assert mode(None, io.StringIO()) == "lines"
    assert mode(True, io.StringIO()) == "lines"
    assert mode(False, _Terminal()) == "off"
    monkeypatch.setitem(sys.modules, "ipykernel", sys)
    assert mode(None, io.StringIO()) == "off"
    assert mode(True, io.StringIO()) == "lines"


def test_one_line_per_unit_with_elapsed_time_and_estimate() -> None:
    log = io.StringIO()
    with Progress(3, "train run-a", "epoch", stream=log) as bar:
        for epoch in range(3):
            bar.advance(note=f"loss {1 / (epoch + 1):.2f}")
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"train run-a: epoch 1/3, \d+s elapsed, ~\d+s left  loss 1\.00", lines[0])
    assert lines[2].startswith("train run-a: epoch 3/3") and "~0s left" in lines[2]


def test_a_resumed_run_counts_its_earlier_units_but_not_in_its_rate() -> None:
    log = io.StringIO()
    bar = Progress(10, "train", "epoch", initial=8, stream=log)
    assert "epoch 8/10" in bar.line() and "left" not in bar.line()  # no rate measured yet
    bar.advance()
    bar.close()
    assert "epoch 9/10" in log.getvalue()


def test_nested_work_is_indented_and_throttled(monkeypatch) -> None:
    log = io.StringIO()
    now = [0.0]
    monkeypatch.setattr(prog.time, "perf_counter", lambda: now[0])
    with Progress(2, "study", "job", stream=log) as outer:
        with Progress(4, "train", "epoch", stream=log) as inner:
            for _ in range(4):
                now[0] += 20  # 20 s per epoch: a line every other epoch (>= 30 s apart)
                inner.advance()
        outer.advance()
    lines = log.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["  train", "  train", "study"]
    with Progress(1, "next", "unit", stream=log) as after:
        assert after.depth == 0  # depth restored on close


def test_track_yields_every_item_and_reports_each(capsys) -> None:
    assert list(track(range(3), "attack", "batch", progress=True)) == [0, 1, 2]
    err = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in err] == [f"attack: batch {i}/3" for i in (1, 2, 3)]
    assert list(track(iter("ab"), "x", "item", progress=False)) == ["a", "b"]
    assert capsys.readouterr().err == ""


def test_a_bar_on_a_terminal_writes_no_lines() -> None:
    term = _Terminal()
    with Progress(2, "targets", "target", stream=term) as bar:
        bar.advance()
        bar.advance()
    assert "targets" in term.getvalue() and "\n" not in term.getvalue().replace("\r", "").strip()


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4s"), (187, "3m07s"), (7500, "2h05m")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_units_of_unequal_work_estimate_what_remains_by_their_work(monkeypatch) -> None:
    log = io.StringIO()
    now = [0.0]
    monkeypatch.setattr(prog.time, "perf_counter", lambda: now[0])
    bar = Progress(3, "study", "job", stream=log, initial=1, work_total=100.0)
    now[0] = 10.0
    bar.advance(work=10.0)  # a small job: 10 of 100 units of work in 10 s
    assert "job 2/3, 10s elapsed, ~1m30s left" in log.getvalue()  # by the count: ~10s
    bar.close()


def test_timed_units_estimate_by_their_own_pace_whatever_runs_meanwhile(monkeypatch) -> None:
    """Two workers: a 100 s job finishes at 200 s of wall time (a long job ran beside it all
    along). Its own pace, 2 s per unit of work, prices the 900 units left over two workers:
    900 s, not the 1800 s that elapsed time over work done gives."""
    log = io.StringIO()
    now = [0.0]
    monkeypatch.setattr(prog.time, "perf_counter", lambda: now[0])
    bar = Progress(4, "study", "job", stream=log, work_total=1000.0, parallel=2)
    now[0] = 200.0
    bar.advance(work=100.0, took=200.0)
    assert "job 1/4, 3m20s elapsed, ~15m00s left" in log.getvalue()
    bar.advance(work=500.0)  # read from a cache meanwhile: less left, the pace unchanged
    assert log.getvalue().splitlines()[-1].endswith("~6m40s left")
    bar.close()

