"""The ledger: finished jobs' outputs committed with the project, so compute outlives its machine.

The store (:mod:`flatness.store`) lives in a cache folder that a fresh machine does not have,
and the cpu study is tens of single-process hours done a few hours at a time on machines that
do not outlive a session. The ledger (``results/ledger/``, or ``FLATNESS_LEDGER``) keeps, in
the checkout:

- ``<kind>/<name>.json``: copies of the store's job entries, same envelope and same name, so
  a ledger entry is exactly what a cache would hold (a training run's entry is its metrics and
  provenance, without weights);
- ``runs/<run name>/``: the finished runs of *target models* with their final weights only.
  Every attack needs the targets; they are costly and fixed per scale, while a surrogate's
  weights are needed only by jobs that are themselves recorded once they finish.

Jobs read the ledger, never write it: a job whose entry is here is not recomputed unless a job
that must compute needs its files (see :func:`flatness.study.executors.files_needed`).
``python -m flatness ledger`` records what the cache holds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flatness.errors import FlatnessError
from flatness.paths import repo_root
from flatness.store import locked, read_entry, write_entry
from flatness.training.runs import Run

#: The run files a restored target needs (besides its final checkpoint); status goes last.
RUN_FILES = ("config.json", "metrics.jsonl", "provenance.json", "status.json")


def ledger_root() -> Path:
    """``FLATNESS_LEDGER``, else the checkout's ``results/ledger`` folder."""
    return Path(os.environ.get("FLATNESS_LEDGER", repo_root() / "results" / "ledger"))


def entry_path(kind: str, name: str) -> Path:
    """Where the ledger keeps the output ``name`` of a job of ``kind``."""
    return ledger_root() / kind / f"{name}.json"


def read(kind: str, name: str) -> Any | None:
    """The recorded output, None when absent (a corrupt or foreign entry is an error)."""
    return read_entry(entry_path(kind, name))


def record(kind: str, name: str, value: Any, inputs: Any = None) -> bool:
    """Record an output unless it is there already; True when this call wrote it."""
    path = entry_path(kind, name)
    if path.is_file():
        return False
    write_entry(path, value, inputs)
    return True


def job_seconds(output: Any) -> float:
    """The compute time a job's output records: a training run's wall time (its provenance),
    another job's ``wall_time_s``; 0 when it records none."""
    if not isinstance(output, dict):
        return 0.0
    timed = output["provenance"] if isinstance(output.get("provenance"), dict) else output
    return float(timed.get("wall_time_s") or 0.0)


def contents(root: Path | None = None) -> dict[str, tuple[int, float]]:
    """What the ledger at ``root`` (default :func:`ledger_root`) holds: per job kind, the
    number of recorded outputs and their compute time in seconds; ``runs`` counts archived
    target runs (time 0: their training is the ``train`` entries'). A corrupt entry is an error."""
    root = ledger_root() if root is None else Path(root)
    held: dict[str, tuple[int, float]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if folder.name == "runs":
            held["runs"] = (sum(1 for run in folder.iterdir() if run.is_dir()), 0.0)
            continue
        entries = sorted(folder.glob("*.json"))
        held[folder.name] = (len(entries), sum(job_seconds(read_entry(e)) for e in entries))
    return held


def archived_run(run_name: str) -> Path:
    """Where the ledger keeps a finished run's folder (final weights only)."""
    return ledger_root() / "runs" / run_name


def is_archived(run_name: str) -> bool:
    """Whether the ledger holds the finished run ``run_name`` with its weights."""
    return (archived_run(run_name) / "status.json").is_file()


def archive_run(run: Run) -> bool:
    """Copy a finished run (its records and final checkpoint) into the ledger; True when this
    call copied it. Written to a temporary folder, then renamed: never half an archive."""
    if not run.is_complete:
        raise FlatnessError(f"run {run.dir} is not complete: only finished runs are archived")
    final = run.checkpoint_path(run.config.epochs)
    if not final.is_file():
        raise FlatnessError(f"run {run.dir} has no final checkpoint ({final.name})")
    destination = archived_run(run.dir.name)
    if is_archived(run.dir.name):
        return False
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run.dir.name}.", dir=destination.parent))
    try:
        for name in RUN_FILES:
            if (run.dir / name).is_file():
                shutil.copy2(run.dir / name, staging / name)
        (staging / "checkpoints").mkdir()
        shutil.copy2(final, staging / "checkpoints" / final.name)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def restore_run(run_dir: Path) -> bool:
    """Put the ledger's archive of the run at ``run_dir`` in place when that run is not
    finished here; True when it did. Under the run's lock, status last: a reader sees either
    no finished run or all of it."""
    source = archived_run(run_dir.name)
    if not is_archived(run_dir.name) or Run(run_dir).is_complete:
        return False
    with locked(run_dir):
        run = Run(run_dir)
        if run.is_complete:
            return False
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        for checkpoint in (source / "checkpoints").glob("epoch_*.pt"):
            _copy_atomic(checkpoint, run_dir / "checkpoints" / checkpoint.name)
        for name in RUN_FILES:
            if (source / name).is_file():
                _copy_atomic(source / name, run_dir / name)
        (run_dir / "resume.pt").unlink(missing_ok=True)  # a restored run is finished
    return True


def _copy_atomic(source: Path, destination: Path) -> None:
    staging = destination.with_name(f".{destination.name}.restoring")
    shutil.copy2(source, staging)
    os.replace(staging, destination)
