"""What every job of the study shares: the scale, the data copy, the device, the target zoo and
the fixed selection of attack images.

A :class:`StudySpec` is small and picklable (it travels to Ray workers); its scale's precision
is resolved when it is made (``auto`` becomes what runs on its device kind, see
:func:`flatness.precision.resolve_precision`), so every job it plans names what actually runs.
:meth:`StudySpec.open` turns it into a :class:`StudyContext`, which loads data and models
lazily and keeps them for the jobs that run in the same process.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from flatness.attacks import training_adversary
from flatness.data import cifar10_source, images_to_tensor, load_dataset
from flatness.device import exact_fp32, resolve_device
from flatness.precision import resolve_precision
from flatness.scales import ModelSpec, Scale, get_scale
from flatness.store import entry_path, get_or_compute, key_of
from flatness.study.targets import target_configs, target_name
from flatness.training import Run, TrainConfig, train


def device_kind(device: str | None) -> str:
    """``"cuda"`` or ``"cpu"``: the kind of ``device`` (None: CUDA when available)."""
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device).split(":")[0]


@dataclass(frozen=True)
class StudySpec:
    """Where and at which scale the study runs (picklable, hashable); the scale's precision
    is resolved on the device's kind (plan time)."""

    scale: Scale
    data: str | None = None
    device: str | None = None
    runs_out: str | None = None
    # torch.compile the surrogates being trained: an execution option, like the device, that
    # changes no job's key (1.2x for SAM steps on one CPU thread, benchmarks/train_throughput.py)
    compile: bool = False

    def __post_init__(self) -> None:
        precision = resolve_precision(self.scale.precision, device_kind(self.device))
        if precision != self.scale.precision:
            object.__setattr__(self, "scale", dataclasses.replace(self.scale,
                                                                  precision=precision))

    @classmethod
    def create(cls, scale: str | Scale, data: str | os.PathLike | None = None,
               device: str | None = None, runs_out: str | os.PathLike | None = None,
               compile: bool = False, **overrides: Any) -> StudySpec:
        return cls(get_scale(scale, **overrides), None if data is None else str(data),
                   None if device is None else str(device),
                   None if runs_out is None else str(runs_out), compile)

    def open(self) -> StudyContext:
        return StudyContext(self)


@dataclass
class StudyContext:
    """Lazily loaded shared state of the study in one process."""

    spec: StudySpec
    _targets: dict[tuple, tuple[list[str], list[nn.Module]]] = field(default_factory=dict)
    _target_runs: dict[tuple, list[str]] = field(default_factory=dict)

    @property
    def scale(self) -> Scale:
        return self.spec.scale

    @functools.cached_property
    def device(self) -> torch.device:
        device = resolve_device(self.spec.device)
        exact_fp32(device, self.scale.precision)
        return device

    @property
    def amp(self) -> bool:
        """Whether the study's attacks and predictions may run under bf16 autocast (on CUDA
        only, :func:`flatness.device.autocast`): in a bf16 study; an fp32 study attacks in
        fp32 on every device, as it trains."""
        return self.scale.precision == "bf16"

    @functools.cached_property
    def cifar10(self) -> tuple[Any, Any]:
        return load_dataset("cifar10", self.spec.data)

    @functools.cached_property
    def data_source(self) -> str:
        """The CIFAR-10 copy's id (part of every job's key), without decoding the copy."""
        return cifar10_source(self.spec.data)

    def train(self, config: TrainConfig) -> Run:
        """Train ``config`` or reuse its finished run."""
        return train(config, data=self.spec.data, device=self.device, out=self.spec.runs_out,
                     compile=self.spec.compile, adversary=training_adversary(config))

    # -- targets ----------------------------------------------------------------------------
    def target_configs(self, dataset: str = "cifar10",
                       specs: tuple[ModelSpec, ...] | None = None) -> list[TrainConfig]:
        """The target zoo: the scale's target architectures with the target recipe."""
        return target_configs(self.scale, dataset, specs)

    def targets(self, dataset: str = "cifar10", specs: tuple[ModelSpec, ...] | None = None
                ) -> tuple[list[str], list[nn.Module]]:
        """Names and trained target models (eval mode, on the device)."""
        specs = self.scale.targets if specs is None else specs
        key = (dataset, specs)
        if key not in self._targets:
            configs = self.target_configs(dataset, specs)
            runs = [self.train(c) for c in configs]
            models = [run.load_model(device=self.device) for run in runs]
            self._target_runs[key] = [run.info["run_id"] for run in runs]
            names = [target_name(c) + ("" if dataset == "cifar10" else f"[{dataset}]")
                     for c in configs]
            for model in models:
                model.requires_grad_(False)
            self._targets[key] = (names, models)
        return self._targets[key]

    # -- the attack images ------------------------------------------------------------------
    def attack_set(self, dataset: str = "cifar10", specs: tuple[ModelSpec, ...] | None = None,
                   n: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` CIFAR-10 test images every target classifies correctly (seeded, cached)."""
        from flatness.attacks import select_correct

        n = self.scale.n_attack_images if n is None else n
        names, models = self.targets(dataset, specs)
        _, test = self.cifar10
        specs = self.scale.targets if specs is None else specs
        runs = self._target_runs[(dataset, specs)]  # loaded with the targets just above
        inputs = {"targets": runs, "n": n, "seed": seed, "data": self.data_source}

        def select() -> dict[str, Any]:
            x_all = images_to_tensor(test.images)
            y_all = torch.from_numpy(test.labels)
            chosen = select_correct(models, x_all, y_all, min(n, len(y_all)), seed,
                                    amp=self.amp)
            return {"indices": chosen.tolist(), "targets": names, "runs": runs}

        entry = get_or_compute(entry_path("attack_sets", key_of(inputs)), select, inputs)
        indices = torch.tensor(entry["indices"], dtype=torch.long)
        x = images_to_tensor(test.images[indices.numpy()])
        y = torch.from_numpy(test.labels[indices.numpy()])
        return x.contiguous(), y
