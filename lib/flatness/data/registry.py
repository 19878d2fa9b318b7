"""Datasets by name: ``cifar10`` built in, derived sets (``d_r@cpu`` ...) read once built.

The data layer only loads: a derived dataset is built by the study's job or the
``robust-datasets`` command (:mod:`flatness.robust`), then read here by its name.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from flatness.data.arrays import ArrayDataset
from flatness.data.cifar10 import load_cifar10
from flatness.data.derived import load_derived
from flatness.errors import FlatnessError

Loader = Callable[[str | None], tuple[ArrayDataset, ArrayDataset]]
_LOADERS: dict[str, Loader] = {"cifar10": load_cifar10}
DERIVED_PATTERN = "<kind>@<scale>"  # a built derived dataset, e.g. d_r@cpu


def register_dataset(name: str, loader: Loader) -> None:
    """Make ``load_dataset(name, data)`` call ``loader(data)``; registering again replaces it."""
    _LOADERS[name] = loader


def known_datasets() -> tuple[str, ...]:
    """The registered dataset names and the pattern of built derived ones, sorted."""
    return tuple(sorted([*_LOADERS, DERIVED_PATTERN]))


def load_dataset(name: str = "cifar10",
                 data: str | os.PathLike | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """The (train, test) sets of dataset ``name``; ``data`` is the CIFAR-10 location."""
    location = None if data is None else os.fspath(data)
    if name in _LOADERS:
        return _LOADERS[name](location)
    kind, at, label = name.partition("@")
    if at and kind and label:
        return load_derived(name, location)
    raise FlatnessError(f"unknown dataset {name!r}; known datasets: {', '.join(known_datasets())}"
                        " (a derived dataset names its scale: d_r@cpu)")
