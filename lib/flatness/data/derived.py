"""Derived datasets (``d_r@cpu`` ...) as the data layer reads them: built artifacts, by name.

The data layer only reads: :func:`load_derived` finds the artifact a name was last built as
(a store entry per name and CIFAR-10 copy, written by :func:`register_name`), and a name never
built is a one-line error naming the command that builds it (``robust-datasets``, or the job
of the study that needs it). Building lives above, in :mod:`flatness.robust`.

Artifacts are store entries ``<cache>/datasets/<kind>-<key>.npz`` plus a JSON sidecar.

The ``.npz`` holds ``images`` (uint8 N x 32 x 32 x 3, quantised from the float construction by
rounding ``x * 255`` to the nearest integer: at most 0.5/255 per pixel, about 0.06 in L2 per
image), ``labels`` (int64), ``classes`` and ``provenance`` (a JSON string). It is written
atomically; the ``.json`` sidecar repeats the provenance for reading without numpy. A file that
is unreadable or from another store version (:data:`flatness.store.STORE_VERSION`, which a
change of construction or layout bumps) reads as missing to the builder, which rebuilds
it, and as a one-line error to :func:`load_derived`.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flatness.data.arrays import ArrayDataset
from flatness.data.cifar10 import load_cifar10
from flatness.errors import FlatnessError
from flatness.io import atomic_path, write_json
from flatness.store import STORE_VERSION, entry_path, key_of, read_entry, write_entry

BUILD_COMMAND = "python -m flatness robust-datasets --scale SCALE"


@dataclass
class DatasetArtifact:
    """One built dataset: images, labels, class names and provenance."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    provenance: dict[str, Any]


def artifact_path(kind: str, key: str) -> Path:
    """Where dataset ``kind`` with identity ``key`` lives."""
    return entry_path("datasets", f"{kind}-{key}", ".npz")


def derived_source(kind: str, key: str, data_copy: str) -> str:
    """The ``source`` string of a derived dataset (it names the training runs made on it)."""
    return f"{kind}:{key} from {data_copy}"


def _name_entry(name: str, data_source: str) -> Path:
    """The store entry saying which artifact ``name`` was last built as from ``data_source``."""
    return entry_path("datasets/names", key_of({"name": name, "data_source": data_source}))


def register_name(name: str, data_source: str, kind: str, key: str) -> None:
    """Record that dataset ``name`` from CIFAR-10 copy ``data_source`` is artifact ``key``."""
    inputs = {"name": name, "data_source": data_source}
    write_entry(_name_entry(name, data_source), {"kind": kind, "key": key}, inputs)


def load_derived(name: str, data: str | None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train = the built dataset ``name``, test = the CIFAR-10 test set); never builds."""
    cifar_train, cifar_test = load_cifar10(data)
    entry = read_entry(_name_entry(name, cifar_train.source))
    scale = name.partition("@")[2].partition("[")[0] or "SCALE"
    if entry is None:
        raise FlatnessError(f"dataset {name!r} is not built from this CIFAR-10 copy: build it "
                            f"with `{BUILD_COMMAND.replace('SCALE', scale)}` (or run the "
                            "chapter that trains on it)")
    path = artifact_path(entry["kind"], entry["key"])
    artifact = read_artifact(path)
    if artifact is None:
        raise FlatnessError(f"dataset {name!r}: artifact {path} is missing or unreadable; "
                            f"rebuild it with `{BUILD_COMMAND.replace('SCALE', scale)} --force`")
    source = derived_source(entry["kind"], entry["key"], cifar_train.source)
    return (ArrayDataset(artifact.images, artifact.labels, artifact.classes, source,
                         name=entry["kind"]), cifar_test)


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
            or provenance.get("store") != STORE_VERSION):
        return None
    return DatasetArtifact(images, labels.astype(np.int64), classes, provenance)
