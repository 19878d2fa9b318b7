"""Dataset names for the training engine: ``d_r``, ``d_nr``, ``d_rand``, ``d_det``.

``load_dataset("d_r@cpu", data)`` is the ``cpu``-scale ``D_R`` (built on demand when missing),
``"d_r@cpu[robust_dataset_size=1000]"`` the same with a field overridden (see
:func:`~flatness.robust.params.dataset_scale_label`);
a plain ``load_dataset("d_r", data)`` uses the default scale: the one given to
:func:`set_default_scale` (a name or a :class:`~flatness.scales.Scale` with overrides), else
``$FLATNESS_SCALE``, else ``smoke``. Names with an explicit scale are the reproducible choice.
Train sets come from the artifact; test sets are the original CIFAR-10 test set.
"""

from __future__ import annotations

import os

from flatness.data.arrays import ArrayDataset
from flatness.data.registry import register_dataset, register_family
from flatness.robust.params import KINDS
from flatness.scales import Scale, get_scale, scale_from_label

_default_scale: str | Scale | None = None


def set_default_scale(scale: str | Scale | None) -> None:
    """The scale that plain ``d_r`` / ``d_nr`` / ``d_rand`` / ``d_det`` resolve to (None: reset)."""
    global _default_scale
    _default_scale = None if scale is None else get_scale(scale)


def default_scale() -> Scale:
    """:func:`set_default_scale`'s scale, else ``$FLATNESS_SCALE``, else ``smoke``."""
    if _default_scale is not None:
        return get_scale(_default_scale)
    return get_scale(os.environ.get("FLATNESS_SCALE", "smoke"))


def load_robust_dataset(kind: str, scale: str | Scale | None = None,
                        data: str | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of dataset ``kind`` at ``scale`` (default: :func:`default_scale`)."""
    from flatness.data.cifar10 import load_cifar10
    from flatness.robust.build import build_dataset

    built = build_dataset(kind, default_scale() if scale is None else scale, data=data)
    return built.datasets(load_cifar10(data)[1])


def _loader(kind: str, scale: str | Scale | None):
    def load(data: str | None) -> tuple[ArrayDataset, ArrayDataset]:
        return load_robust_dataset(kind, scale, data)
    name = getattr(scale, "name", scale) or "default"
    load.__doc__ = f"{kind} at scale {name} (built on demand)."
    return load


def register_all() -> None:
    """Register ``<kind>`` and the family ``<kind>@<scale label>`` for every kind."""
    for kind in KINDS:
        register_dataset(kind, _loader(kind, None))
        register_family(kind, lambda label, kind=kind: _loader(kind, scale_from_label(label)))


register_all()
