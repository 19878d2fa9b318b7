"""One content-addressed store for everything the study computes once and reuses.

Training runs, derived datasets, job outputs, attack image sets, per-epoch sharpness and
chapter results all live under ``<cache>/<namespace>/`` (see :mod:`flatness.paths`), each
named by :func:`key_of` its inputs: one canonical hash over JSON-able inputs, salted with the
one :data:`STORE_VERSION`, so a change of layout or meaning is one bump here. A JSON entry is
an envelope (store version, key, inputs, value) written atomically (temp file + rename); a
second process asking for a key that is being computed waits on the entry's file lock, then
reuses it (:func:`get_or_compute`); a computation that fails leaves nothing behind, neither
the folders it created nor its lock file. A truncated, corrupt or foreign entry is a one-line
:class:`~flatness.errors.FlatnessError` naming the file to delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from flatness.errors import FlatnessError
from flatness.io import to_jsonable, write_json
from flatness.paths import cache_subdir

#: Bumped when an entry's layout or the meaning of its inputs changes: every key changes.
STORE_VERSION = 1
KEY_LENGTH = 16  # hex digits: 64 bits, no collision among the study's ~10^4 entries


#: Whether the holder of an entry's lock may remove its lock file. filelock (>= 3.20.4, the
#: version required) has a process that wins the flock of a lock file unlinked meanwhile drop it
#: and retry on a fresh file, so removing a held lock file splits no one; on other systems
#: the lock file stays.
LOCK_FILES_REMOVABLE = os.name == "posix"


def canonical_json(inputs: Any) -> str:
    """``inputs`` as one canonical JSON text (sorted keys, tuples as lists, no spaces)."""
    try:
        return json.dumps(to_jsonable(inputs), sort_keys=True, separators=(",", ":"),
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FlatnessError(f"store inputs are not plain JSON ({exc})") from None


def key_of(inputs: Any) -> str:
    """The store key of ``inputs``: a hash of their canonical JSON and the store version."""
    text = canonical_json({"store": STORE_VERSION, "inputs": inputs})
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def namespace_dir(namespace: str) -> Path:
    """The folder of one kind of entry (``runs``, ``jobs/transfer``, ``datasets`` ...)."""
    return cache_subdir(namespace)


def entry_path(namespace: str, key: str, suffix: str = ".json") -> Path:
    """Where the entry ``key`` of ``namespace`` lives."""
    return namespace_dir(namespace) / f"{key}{suffix}"


def _lock_file(path: Path) -> Path:
    return Path(str(path) + ".lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of the entry at ``path`` (other processes wait for it)."""
    path = Path(path)
    lock = FileLock(str(_lock_file(path)))
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire()
            break
        except FileNotFoundError:
            # a failed computation removed the folder while this process waited: it was empty,
            # so no lock was held in it and making it again splits no one
            if path.parent.is_dir():
                raise
    try:
        yield
    finally:
        lock.release()


def read_entry(path: str | os.PathLike) -> Any | None:
    """The value of the JSON entry at ``path``, None when absent; a corrupt entry or one from
    another store version is a one-line error."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        envelope = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlatnessError(f"store entry {path} is corrupt ({type(exc).__name__}); "
                            "delete it to recompute") from None
    if not isinstance(envelope, dict) or "value" not in envelope or "store" not in envelope:
        raise FlatnessError(f"store entry {path} is not a flatness store entry; "
                            "delete it to recompute")
    if envelope["store"] != STORE_VERSION:
        raise FlatnessError(f"store entry {path} was written by store version "
                            f"{envelope['store']}, this code reads version {STORE_VERSION}; "
                            "delete it to recompute")
    return envelope["value"]


def write_entry(path: str | os.PathLike, value: Any, inputs: Any = None) -> Any:
    """Atomically write ``value`` (with the ``inputs`` it was keyed by) as a JSON entry."""
    value = to_jsonable(value)
    write_json(path, {"store": STORE_VERSION, "key": Path(path).stem, "inputs": inputs,
                      "value": value})
    return value


def get_or_compute(path: str | os.PathLike, compute: Callable[[], Any],
                   inputs: Any = None) -> Any:
    """The entry at ``path``, else ``compute()`` once across processes (locked), stored; when
    ``compute`` fails, its lock file and the folders this call created go with it."""
    value = read_entry(path)
    if value is not None:
        return value
    path = Path(path)
    created = _missing_folders(path.parent)
    try:
        with locked(path):
            value = read_entry(path)  # computed by the process that held the lock
            if value is None:
                try:
                    value = write_entry(path, compute(), inputs)
                except BaseException:
                    _remove_held_lock_file(path)
                    raise
    except BaseException:
        _remove_empty(created)
        raise
    return value


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_held_lock_file(path: Path) -> None:
    """Remove the lock file of ``path``, which this process holds, where that is safe
    (:data:`LOCK_FILES_REMOVABLE`; else it stays, holding no data, and so does its folder)."""
    if LOCK_FILES_REMOVABLE:
        with contextlib.suppress(OSError):
            _lock_file(path).unlink()


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` in order while they are empty: one another process writes in, or
    waits in for a lock, is kept with its parents."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue  # removed by another failed computation
        except OSError:
            return
