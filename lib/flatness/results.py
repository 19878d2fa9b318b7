"""Versioned result files: what the book renders.

A result file is a small JSON document::

    {"schema": "flatness.result", "version": 1, "kind": "transfer_curve",
     "scale": "cpu", "config": {...}, "seeds": [0, 1], "data_copy": "...",
     "provenance": {"code_commit": ..., "device": ..., "wall_time_s": ...}, "data": {...}}

Reading checks the schema, the version and the kind, so a file from another version of the
code or of another kind gets a clear error instead of a wrong figure.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flatness.errors import FlatnessError
from flatness.io import write_json

SCHEMA = "flatness.result"
VERSION = 1


@dataclass
class Result:
    """One experiment's output with everything needed to judge where it came from."""

    kind: str
    scale: str
    config: dict[str, Any]
    data: dict[str, Any]
    seeds: list[int] = field(default_factory=list)
    data_copy: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "kind": self.kind,
            "scale": self.scale,
            "config": self.config,
            "seeds": list(self.seeds),
            "data_copy": self.data_copy,
            "provenance": self.provenance,
            "data": self.data,
        }


def write_result(path: str | os.PathLike, result: Result) -> Path:
    """Atomically write a result file and return its path."""
    path = Path(path)
    write_json(path, result.to_json())
    return path


def read_result(path: str | os.PathLike, kind: str | None = None) -> Result:
    """Read a result file, checking schema, version and (optionally) kind."""
    path = Path(path)
    if not path.is_file():
        raise FlatnessError(
            f"result file {path} does not exist: compute it first (or check the path)")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FlatnessError(
            f"result file {path} is not valid JSON ({exc}); delete and recompute it") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise FlatnessError(f"{path} is not a flatness result file (missing schema {SCHEMA!r})")
    if doc.get("version") != VERSION:
        raise FlatnessError(
            f"{path} was written by result format version {doc.get('version')}, this code reads "
            f"version {VERSION}: recompute it with this version (recompute=True)"
        )
    if kind is not None and doc.get("kind") != kind:
        raise FlatnessError(f"{path} holds a {doc.get('kind')!r} result, expected {kind!r}")
    return Result(
        kind=doc["kind"],
        scale=doc.get("scale", "?"),
        config=doc.get("config", {}),
        data=doc.get("data", {}),
        seeds=list(doc.get("seeds", [])),
        data_copy=doc.get("data_copy", ""),
        provenance=doc.get("provenance", {}),
    )
