"""The store (:mod:`flatness.store`): canonical keys, atomic entries, one-line errors for
corrupt or foreign entries, one computation across processes, nothing left by a failed one;
and the imports go one way: the layers below the study import nothing above them, a chapter's
design neither its analysis nor its figures."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flatness.errors import FlatnessError
from flatness.store import (
    LOCK_FILES_REMOVABLE,
    STORE_VERSION,
    entry_path,
    get_or_compute,
    key_of,
    read_entry,
    write_entry,
)


def test_an_entry_round_trips_with_its_inputs_and_the_store_version(tmp_path):
    path = tmp_path / "jobs" / f"{key_of({'x': 1})}.json"
    assert read_entry(path) is None
    assert write_entry(path, {"value": (1, 2)}, {"x": 1}) == {"value": [1, 2]}
    assert read_entry(path) == {"value": [1, 2]}
    envelope = json.loads(path.read_text())
    assert envelope["store"] == STORE_VERSION and envelope["inputs"] == {"x": 1}
    assert entry_path("jobs/train", "abc").name == "abc.json"


def test_get_or_compute_computes_once_then_reads(tmp_path):
    calls = []
    path = tmp_path / "entry.json"
    first = get_or_compute(path, lambda: calls.append(1) or {"n": len(calls)})
    again = get_or_compute(path, lambda: calls.append(1) or {"n": len(calls)})
    assert first == again == {"n": 1} and calls == [1]


@pytest.mark.parametrize("text", ['{"store": 1, "value": {"a"', "", "\x00\x01garbage",
                                  '["not", "an", "entry"]'])
def test_a_corrupt_entry_is_a_one_line_error_naming_the_file(tmp_path, text):
    path = tmp_path / "entry.json"
    path.write_text(text)
    with pytest.raises(FlatnessError, match="delete it to recompute") as info:
        get_or_compute(path, lambda: {"never": "computed"})
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_an_entry_of_another_store_version_is_refused_with_the_versions(tmp_path):
    path = tmp_path / "entry.json"
    path.write_text(json.dumps({"store": STORE_VERSION + 1, "key": "entry", "value": {}}))
    with pytest.raises(FlatnessError, match=f"store version {STORE_VERSION + 1}, this code "
                                            f"reads version {STORE_VERSION}"):
        read_entry(path)


def test_a_failed_write_leaves_the_old_entry_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "entry.json"
    write_entry(path, {"old": 1})

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_entry(path, {"new": 2})
    assert read_entry(path) == {"old": 1} and sorted(tmp_path.iterdir()) == [path]


def _write_forever(path: str) -> None:
    """Write an entry but hang before it is renamed into place (killed there by the test)."""
    os.replace = lambda *args: time.sleep(600)  # noqa: ARG005 - the rename never comes
    write_entry(Path(path), {"half": "written"})


def test_a_killed_write_leaves_nothing_at_the_entry(tmp_path):
    path = tmp_path / "entry.json"
    process = multiprocessing.get_context("spawn").Process(target=_write_forever,
                                                           args=(str(path),))
    process.start()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".entry.json.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.join()
    assert list(tmp_path.glob(".entry.json.*.tmp")), "the writer never started writing"
    assert not path.exists() and read_entry(path) is None
    assert get_or_compute(path, lambda: {"whole": True}) == {"whole": True}


def _compute_slowly(path: str, log: str) -> None:
    """Append to ``log`` when computing (slowly, so that the other process asks meanwhile)."""
    def compute() -> dict[str, int]:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return {"answer": 42}

    assert get_or_compute(Path(path), compute) == {"answer": 42}


def test_two_processes_asking_for_one_key_compute_it_once(tmp_path):
    path, log = tmp_path / "entry.json", tmp_path / "computed.log"
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_compute_slowly, args=(str(path), str(log)))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert len(log.read_text().split()) == 1  # one computed, the other waited and read it
    assert read_entry(path) == {"answer": 42}


def _fail(*args: object) -> None:
    raise RuntimeError("this computation fails")


@pytest.mark.skipif(not LOCK_FILES_REMOVABLE, reason="this filelock cannot drop a held lock file")
def test_a_failed_compute_leaves_nothing_behind(tmp_path):
    path = tmp_path / "jobs" / "transfer" / "entry.json"
    with pytest.raises(RuntimeError, match="fails"):
        get_or_compute(path, _fail)
    assert list(tmp_path.iterdir()) == []  # neither the folders it made nor its lock file
    write_entry(tmp_path / "jobs" / "other.json", {"kept": True})
    with pytest.raises(RuntimeError, match="fails"):
        get_or_compute(tmp_path / "jobs" / "entry.json", _fail)
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == ["other.json"]
    assert get_or_compute(path, lambda: {"now": "computed"}) == {"now": "computed"}


def _announce_then_compute(path: str, log: str, ready: str) -> None:
    """Say this process is about to ask for the entry, then ask (see :func:`_compute_slowly`)."""
    (Path(ready) / str(os.getpid())).touch()
    _compute_slowly(path, log)


def _fail_while_two_wait(path: str, log: str, ready: str) -> None:
    """Hold the entry's lock until two other processes ask for it, then fail."""
    def compute() -> None:
        with open(log, "a") as handle:
            handle.write("failed\n")
        deadline = time.monotonic() + 120
        while len(list(Path(ready).iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # they are waiting on the lock now
        _fail()

    get_or_compute(Path(path), compute)


def test_processes_waiting_on_a_failed_compute_compute_it_once(tmp_path):
    """The failing process removes the lock file and the folder it holds them in while the
    others wait: one of them computes, the other reads its entry."""
    path, log, ready = tmp_path / "new" / "entry.json", tmp_path / "log", tmp_path / "ready"
    ready.mkdir()
    context = multiprocessing.get_context("spawn")
    failing = context.Process(target=_fail_while_two_wait, args=(str(path), str(log), str(ready)))
    failing.start()
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting = [context.Process(target=_announce_then_compute,
                               args=(str(path), str(log), str(ready))) for _ in range(2)]
    for process in waiting:
        process.start()
    for process in (failing, *waiting):
        process.join(180)
    assert failing.exitcode != 0 and [p.exitcode for p in waiting] == [0, 0]
    computed = log.read_text().split()
    assert computed[0] == "failed" and len(computed) == 2  # then one computed, one read it
    assert read_entry(path) == {"answer": 42}


def test_the_layers_below_the_study_import_nothing_above_them():
    code = ("import sys, flatness.data, flatness.models, flatness.minimizers, flatness.attacks, "
            "flatness.sharpness, flatness.training\n"
            "above = ('flatness.study', 'flatness.robust', 'flatness.scales', 'flatness.cli')\n"
            "print(sorted(m for m in sys.modules if m.startswith(above)))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lib")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=300).stdout
    assert out.strip() == "[]"


def _imported_after(statement: str) -> list[str]:
    """The flatness modules a fresh interpreter has imported after ``statement``."""
    code = (f"import sys\n{statement}\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('flatness.'))))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lib")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True, timeout=300).stdout.split()


def test_a_chapters_design_imports_neither_its_analysis_nor_its_figures():
    """Analysis imports design, plots import analysis; a design names its summary lazily, so
    each layer imports alone, whichever comes first."""
    from flatness.study.chapters import MODULES

    designs = _imported_after("from flatness.study.chapters import chapters; chapters()")
    assert not [m for m in designs if m.startswith(("flatness.study.analysis.", "flatness.plots"))]
    for name in MODULES:  # the regime map included
        layers = {f"flatness.study.analysis.{name}", f"flatness.plots.{name}"}
        assert layers | {f"flatness.study.chapters.{name}"} <= set(
            _imported_after(f"import {', '.join(sorted(layers))}"))


def test_a_corrupt_run_file_is_a_one_line_error_naming_the_run(tmp_path):
    from flatness.training import Run

    (tmp_path / "config.json").write_text('{"config": {"arch"')
    (tmp_path / "status.json").write_text("\x00")
    run = Run.open(tmp_path)
    for read in (lambda: run.info, lambda: run.status):
        with pytest.raises(FlatnessError, match="corrupt; delete the run directory") as info:
            read()
        assert "\n" not in str(info.value)
