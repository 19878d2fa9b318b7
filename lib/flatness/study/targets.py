"""The target zoo of the study: a scale's targets as training configurations, trained or
reused from the run cache, never a folder of weights from nowhere.

Target seeds start at :data:`TARGET_SEED` so that a target of the surrogate's architecture is
never the surrogate itself (surrogate seeds are small integers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from torch import nn

from flatness.device import resolve_device
from flatness.progress import track
from flatness.scales import ModelSpec, Scale
from flatness.training import TrainConfig, train

TARGET_SEED = 1000


def target_configs(scale: Scale, dataset: str = "cifar10",
                   specs: tuple[ModelSpec, ...] | None = None) -> list[TrainConfig]:
    """One :class:`~flatness.training.TrainConfig` per target of ``scale`` (target recipe),
    trained on ``dataset``; ``specs`` replaces the scale's target architectures."""
    specs = scale.targets if specs is None else specs
    # derived datasets (d_r, d_nr, ...) are already built from the scale's subset: use all of it
    subset = {} if dataset == "cifar10" else {"train_subset": None}
    return [TrainConfig.from_scale(scale, spec, seed=TARGET_SEED + i, target=True,
                                   dataset=dataset, **subset)
            for i, spec in enumerate(specs)]


def target_name(config: TrainConfig) -> str:
    """``arch@width`` (plus ``:depth``), the label used in tables and result files."""
    name = f"{config.arch}@{config.width:g}"
    return name + (f":{config.depth}" if config.depth is not None else "")


@dataclass
class Targets:
    """Loaded target models with their names and run directories."""

    names: list[str]
    models: list[nn.Module]
    run_dirs: list[str]


def load_targets(scale: Scale, device: Any = None, data: str | os.PathLike | None = None,
                 out: str | os.PathLike | None = None, progress: bool | None = None) -> Targets:
    """Train the scale's targets (or reuse their finished runs) and load them in eval mode."""
    dev = resolve_device(device)
    names, models, dirs = [], [], []
    for config in track(target_configs(scale), f"targets of {scale.name}", "target",
                        progress=progress):
        run = train(config, data=data, device=dev, out=out, progress=progress)
        names.append(target_name(config))
        models.append(run.load_model(device=dev))
        dirs.append(str(run.dir))
    return Targets(names, models, dirs)


