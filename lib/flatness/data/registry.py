"""Datasets by name: ``cifar10`` built in; derived sets (``d_r``, ``d_nr``, ...) register here."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from flatness.data.arrays import ArrayDataset
from flatness.data.cifar10 import load_cifar10
from flatness.errors import FlatnessError

Loader = Callable[[str | None], tuple[ArrayDataset, ArrayDataset]]
_LOADERS: dict[str, Loader] = {"cifar10": load_cifar10}
# families of names "<kind>@<label>": the loader is made from the label on first use
_FAMILIES: dict[str, Callable[[str], Loader]] = {}
_DERIVED = "flatness.robust"  # registers d_r, d_nr, d_rand, d_det; imported at first lookup


def _register_derived() -> None:
    """Import the derived-dataset package (lazily: it depends on the training engine)."""
    importlib.import_module(_DERIVED)


def register_dataset(name: str, loader: Loader) -> None:
    """Make ``load_dataset(name, data)`` call ``loader(data)``; registering again replaces it."""
    _LOADERS[name] = loader


def register_family(kind: str, factory: Callable[[str], Loader]) -> None:
    """Make ``load_dataset(f"{kind}@{label}", data)`` call ``factory(label)(data)``."""
    _FAMILIES[kind] = factory


def known_datasets() -> tuple[str, ...]:
    """The registered dataset names and families (``d_r@<scale>``), sorted."""
    _register_derived()
    return tuple(sorted([*_LOADERS, *(f"{kind}@<scale>" for kind in _FAMILIES)]))


def load_dataset(name: str = "cifar10",
                 data: str | os.PathLike | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """The (train, test) sets of dataset ``name``; ``data`` is the CIFAR-10 location."""
    _register_derived()
    kind, at, label = name.partition("@")
    if name in _LOADERS:
        loader = _LOADERS[name]
    elif at and kind in _FAMILIES:
        loader = _FAMILIES[kind](label)
    else:
        raise FlatnessError(
            f"unknown dataset {name!r}; known datasets: {', '.join(known_datasets())}")
    return loader(None if data is None else os.fspath(data))
