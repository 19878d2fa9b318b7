"""``load_cifar10``: find the data copy, decode it once, cache the uint8 arrays.

The location (``--data``, else ``$FLATNESS_DATA``, else torchvision's cache folder) is one of:
an image-folder tree's ``.tar.gz``, the extracted tree, or a folder holding (or receiving by
download) the official archive. Decoded arrays are stored in ``<cache>/data`` under a store key
(:func:`flatness.store.key_of`) that changes whenever the copy changes; the file is written
atomically, after a successful decode, so a failure never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from flatness.data import imagefolder, official
from flatness.data.arrays import CIFAR10_CLASSES, ArrayDataset
from flatness.errors import FlatnessError
from flatness.io import atomic_path
from flatness.paths import default_data_location
from flatness.store import entry_path, key_of


def load_cifar10(data: str | os.PathLike | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """The CIFAR-10 (train, test) sets from ``data`` (see the module docstring), cached."""
    path, is_default = _resolve(data)
    kind, key, source = _identify(path, is_default)
    cache_file = _cache_file(kind, key)
    arrays = _read_cache(cache_file)
    if arrays is None:
        if kind == "official":
            official.ensure_downloaded(path)
            kind, key, source = _identify(path, is_default)
            cache_file = _cache_file(kind, key)
            splits = official.read_official(path)
        else:
            splits = imagefolder.read_image_folder(path)
        arrays = {f"{split}_{what}": arr for split, pair in splits.items()
                  for what, arr in zip(("images", "labels"), pair)}
        arrays["source"] = np.array(source)
        _write_cache(cache_file, arrays)
    train, test = (ArrayDataset(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                                CIFAR10_CLASSES, str(arrays["source"]))
                   for split in ("train", "test"))
    return train, test


def cifar10_source(data: str | os.PathLike | None = None) -> str:
    """The source id :func:`load_cifar10`'s sets carry for ``data``, read without decoding
    the copy (a job's key names its data copy; decoding 60,000 images to learn it cost a plan
    or a cached chapter seconds, and minutes with an empty cache)."""
    path, is_default = _resolve(data)
    return _identify(path, is_default)[2]


def _cache_file(kind: str, key: str) -> Path:
    """Where the decoded arrays of one data copy are stored (a store key of the copy)."""
    return entry_path("data", f"cifar10-{kind}-{key_of({'kind': kind, 'copy': key})}", ".npz")


def _resolve(data: str | os.PathLike | None) -> tuple[Path, bool]:
    """The data location as a path, and whether it is the built-in default (may be created)."""
    is_default = data is None and "FLATNESS_DATA" not in os.environ
    location = data if data is not None else default_data_location()
    path = Path(os.path.expanduser(os.fspath(location)))
    if not path.exists() and not is_default:
        origin = "FLATNESS_DATA" if data is None else "--data"
        raise FlatnessError(
            f"missing data path {path} (from {origin}): pass --data PATH to a CIFAR-10 copy "
            "(an image-folder tree, its .tar.gz, or a folder for the official archive)"
        )
    return path, is_default


def _identify(path: Path, is_default: bool) -> tuple[str, str, str]:
    """``(kind, cache key, source id)`` of a data location."""
    if path.is_file():
        digest = _sha256(path)
        return "archive", digest[:32], f"{path.name} sha256:{digest[:16]}"
    if path.is_dir() and not is_default and not official.is_official_folder(path) \
            and imagefolder.is_image_folder(path):
        digest = hashlib.sha256(_folder_fingerprint(path).encode()).hexdigest()
        return "folder", digest[:32], f"{path.name}/ files:{digest[:16]}"
    if (path / official.BASE_FOLDER).is_dir():
        digest = hashlib.sha256(official.official_fingerprint(path).encode()).hexdigest()
        return "official", digest[:32], "torchvision-official"
    return "official", "absent", "torchvision-official"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder_fingerprint(path: Path) -> str:
    """Relative path, size and modification time of every file under ``path``."""
    parts = [str(path.resolve())]
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            stat = os.stat(os.path.join(dirpath, name))
            parts.append(f"{os.path.relpath(os.path.join(dirpath, name), path)}:"
                         f"{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts)


def _read_cache(cache_file: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or ``None`` when absent or unreadable (then we decode again)."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError):
        return None


def _write_cache(cache_file: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the decoded arrays atomically (uncompressed: loading is then a plain read)."""
    with atomic_path(cache_file) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
