"""Dataset artifacts: ``<cache>/datasets/<kind>-v<FORMAT>-<key>.npz`` plus a JSON sidecar.

The ``.npz`` holds ``images`` (uint8 N x 32 x 32 x 3, quantised from the float construction by
rounding ``x * 255`` to the nearest integer: at most 0.5/255 per pixel, about 0.06 in L2 per
image), ``labels`` (int64), ``classes`` and ``provenance`` (a JSON string). It is written
atomically; the ``.json`` sidecar repeats the provenance for reading without numpy. A file that
is unreadable or from another format version reads as missing, so it is rebuilt.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flatness.io import atomic_path, write_json
from flatness.paths import cache_subdir

FORMAT = 1  # bump when the construction or the file layout changes


@dataclass
class DatasetArtifact:
    """One built dataset: images, labels, class names and provenance."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    provenance: dict[str, Any]


def artifact_path(kind: str, key: str) -> Path:
    """Where dataset ``kind`` with identity ``key`` lives."""
    return cache_subdir("datasets") / f"{kind}-v{FORMAT}-{key}.npz"


def quantise(x: torch.Tensor) -> np.ndarray:
    """Float N x 3 x H x W images in [0, 1] -> uint8 N x H x W x 3 (nearest level)."""
    q = x.detach().float().clamp(0, 1).mul(255).round_().to(torch.uint8)
    return q.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def save_artifact(path: Path, artifact: DatasetArtifact) -> None:
    """Write the ``.npz`` atomically, then its provenance sidecar."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, images=artifact.images, labels=artifact.labels.astype(np.int64),
                 classes=np.array(artifact.classes),
                 provenance=np.array(json.dumps(artifact.provenance, sort_keys=True)))
    write_json(path.with_suffix(".json"), artifact.provenance)


def read_artifact(path: Path) -> DatasetArtifact | None:
    """The artifact at ``path``, or ``None`` when missing, unreadable or inconsistent."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
            classes = tuple(str(c) for c in npz["classes"])
            provenance = json.loads(str(npz["provenance"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if (images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (len(images),)
            or provenance.get("format") != FORMAT):
        return None
    return DatasetArtifact(images, labels.astype(np.int64), classes, provenance)
