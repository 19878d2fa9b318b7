"""Atomic file writes: nothing half-written is ever left behind.

Every artifact (JSON results, checkpoints, caches, arrays) is written to a temporary file in
the destination folder and renamed into place, so an interrupted process leaves either the old
file or the new one, never a truncated file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy ``source`` to ``path`` atomically (parent folders created)."""
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write JSON (sorted keys, indented, NaN as null-safe floats)."""
    write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Atomically write a compressed ``.npz`` archive."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """Atomically ``torch.save`` an object (checkpoints, tensors)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays, paths and tuples to plain JSON values.

    Non-finite floats become ``None`` so that files stay strict JSON.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch.Tensor
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
