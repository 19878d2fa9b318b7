"""The study's job graph run by worker processes: side by side, in dependency order, cached
once, and a failing job stops only what reads it."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from flatness.errors import FlatnessError
from flatness.study import StudySpec, run_jobs
from flatness.study.executors import worker_threads
from flatness.study.jobs import Job


@dataclass(frozen=True)
class Sleep(Job):
    """A job that sleeps and leaves, in ``log``, when and in which process it ran (spawned
    workers import it from this module)."""

    name: str
    log: str
    after: tuple[Sleep, ...] = ()
    seconds: float = 0.0
    fail: bool = False
    announce: bool = False  # leave <name>.pid in ``log`` when it starts
    kind: ClassVar[str] = "test-sleep"

    @property
    def label(self) -> str:
        return f"sleep {self.name}"

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        return self.after

    def compute(self, ctx) -> dict:
        start = time.time()
        if self.announce:
            (Path(self.log) / f"{self.name}.pid").write_text(str(os.getpid()))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError(f"{self.name} breaks")
        record = {"pid": os.getpid(), "start": start, "end": time.time()}
        with open(Path(self.log) / "computed.jsonl", "a") as log:
            log.write(json.dumps({"name": self.name, **record}) + "\n")
        return {"name": self.name, **record}


@dataclass(frozen=True)
class Resumed(Sleep):
    """A job resumed near its end: it records ``recorded_s`` of compute (a training run's
    epochs before an interruption) though it takes no time here."""

    recorded_s: float = 0.0
    kind: ClassVar[str] = "test-resumed"

    def compute(self, ctx) -> dict:
        return {**super().compute(ctx), "recorded_s": self.recorded_s}

    def compute_time_s(self, output: dict) -> float:
        return float(output["recorded_s"])


def computed(log: Path) -> dict[str, dict]:
    path = log / "computed.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return {(row := json.loads(line))["name"]: row for line in lines}


def test_workers_run_independent_jobs_side_by_side_and_their_reader_after(tmp_path):
    log = str(tmp_path)
    a, b = Sleep("a", log, seconds=1.5), Sleep("b", log, seconds=1.5)
    c = Sleep("c", log, after=(a, b))
    spec = StudySpec.create("smoke")
    outputs = run_jobs([c], spec, workers=2, progress=False)
    assert [outputs[j.key()]["name"] for j in (a, b, c)] == ["a", "b", "c"]
    runs = computed(tmp_path)
    assert runs["a"]["pid"] != runs["b"]["pid"] and os.getpid() not in {r["pid"] for r in
                                                                         runs.values()}
    assert runs["a"]["start"] < runs["b"]["end"] and runs["b"]["start"] < runs["a"]["end"]
    assert runs["c"]["start"] >= max(runs["a"]["end"], runs["b"]["end"])
    # a second run reads every output from the cache: nothing is computed again
    again = run_jobs([c], spec, workers=2, progress=False)
    assert again == outputs and len(computed(tmp_path)) == 3


def test_a_failing_job_stops_only_what_reads_it(tmp_path):
    log = str(tmp_path)
    broken, fine = Sleep("broken", log, fail=True), Sleep("fine", log, seconds=0.5)
    reader = Sleep("reader", log, after=(broken,))
    spec = StudySpec.create("smoke")
    with pytest.raises(FlatnessError, match=r"1 job\(s\) failed .* sleep broken: "
                                            r"RuntimeError: broken breaks"):
        run_jobs([reader, fine], spec, workers=2, progress=False)
    assert set(computed(tmp_path)) == {"fine"}  # finished and cached; the reader never ran
    assert fine.output_path(spec.open()).is_file()


def test_workers_are_checked_and_belong_to_the_local_executor():
    spec = StudySpec.create("smoke")
    for bad in (0, 1.5, True):
        with pytest.raises(FlatnessError, match="workers must be an integer >= 1"):
            run_jobs([], spec, workers=bad)
    with pytest.raises(FlatnessError, match="the ray executor schedules its own"):
        run_jobs([], spec, executor="ray", workers=2)


def test_each_worker_gets_its_share_of_the_cpus_unless_told(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_threads(2) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert worker_threads(1) == (os.cpu_count() or 1)
    assert worker_threads(10 * (os.cpu_count() or 1)) == 1


def test_the_command_line_refuses_a_bad_worker_count_before_running_anything(capsys):
    from flatness.cli import main

    assert main(["reproduce", "--scale", "smoke", "--chapters", "lr_decay",
                 "--workers", "0"]) == 2
    assert "workers must be an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_stored_before_a_run_count_as_done_not_towards_its_pace(tmp_path, capsys, workers):
    """A resumed study reads its finished jobs in no time: they are counted before the first
    line, so that the estimate of what remains follows the jobs it computes."""
    log = str(tmp_path)
    spec = StudySpec.create("smoke")
    first = Sleep("first", log)
    run_jobs([first], spec, progress=False)
    run_jobs([Sleep("second", log, after=(first,))], spec, workers=workers)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith("study:")] == [
        "study: job 2/2"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_resumed_job_paces_the_study_by_the_compute_it_records(tmp_path, capsys, workers):
    """Two jobs of the same expected size: the first, resumed, records 100 s of compute. The
    second is priced at that pace (as the plan prices it from recorded compute), shared by the
    workers, not at the instant the resumed job took in this process."""
    log = str(tmp_path)
    first = Resumed("first", log, recorded_s=100.0)
    run_jobs([first, Resumed("second", log, after=(first,))], StudySpec.create("smoke"),
             workers=workers)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("study:")]
    left = {1: "~1m40s left", 2: "~50s left"}[workers]
    assert lines[0].startswith("study: job 1/2") and left in lines[0]


def test_workers_stop_when_the_study_that_started_them_is_killed(tmp_path):
    """A killed study (SIGKILL: no cleanup) leaves no worker computing on."""
    import signal
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    script = (f"from test_executors import Sleep\n"
              f"from flatness.study import StudySpec, run_jobs\n"
              f"run_jobs([Sleep('long', {str(tmp_path)!r}, seconds=120, announce=True)], "
              f"StudySpec.create('smoke'), workers=2, progress=False)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent / "lib")])}
    study = subprocess.Popen([sys.executable, "-c", script], env=env)
    marker = tmp_path / "long.pid"
    deadline = time.time() + 120
    while not marker.is_file() and time.time() < deadline:
        time.sleep(0.2)
    worker = int(marker.read_text())
    study.send_signal(signal.SIGKILL)
    study.wait(30)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived the killed study by 15 s")
    assert not computed(tmp_path)  # the job never finished
