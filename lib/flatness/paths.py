"""Where things live: the cache directory and the default data location.

One cache directory (``FLATNESS_CACHE``, default ``~/.cache/flatness``) holds the store
(:mod:`flatness.store`): decoded data, training runs, derived datasets, job outputs, results.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The root of all cached artifacts (created on demand)."""
    root = Path(os.environ.get("FLATNESS_CACHE", Path.home() / ".cache" / "flatness"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_subdir(name: str) -> Path:
    """A named sub-folder of the cache (``data``, ``runs``, ``datasets``, ``results``)."""
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_data_location() -> str:
    """``FLATNESS_DATA`` if set, else torchvision's cache folder for the official archive."""
    return os.environ.get("FLATNESS_DATA", str(Path.home() / ".cache" / "torchvision"))


def repo_root() -> Path:
    """The project checkout this package was imported from (for notebooks and the book)."""
    return Path(__file__).resolve().parents[2]
