"""The artifacts of one transfer experiment: ``results.json`` (kind ``transfer``) and
``adversarial.npz`` with the clean and adversarial images and their labels."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flatness.errors import FlatnessError
from flatness.io import write_npz
from flatness.provenance import provenance
from flatness.results import Result, read_result, write_result

KIND = "transfer"


@dataclass
class TransferResult:
    """Per-target success rates of one attack (one surrogate, or an ensemble), with the mean
    over targets and everything needed to redo it in ``config``."""

    targets: list[str]
    success: list[float]
    n_images: int
    config: dict[str, Any] = field(default_factory=dict)
    scale: str = "?"
    seeds: list[int] = field(default_factory=list)
    data_copy: str = ""

    def __post_init__(self) -> None:
        if len(self.targets) != len(self.success):
            raise FlatnessError(
                f"{len(self.targets)} target names but {len(self.success)} success rates")
        self.success = [float(s) for s in self.success]

    @property
    def mean(self) -> float:
        """Mean success rate over targets (NaN-free targets only)."""
        vals = [s for s in self.success if s == s]
        return float(np.mean(vals)) if vals else float("nan")

    def table(self) -> str:
        """A plain-text table: one line per target, then the mean."""
        width = max([len(t) for t in self.targets] + [4])
        lines = [f"{'target':<{width}}  success"]
        lines += [f"{t:<{width}}  {s:7.3f}" for t, s in zip(self.targets, self.success)]
        lines.append(f"{'mean':<{width}}  {self.mean:7.3f}")
        return "\n".join(lines)

    def to_result(self, device: Any = None, **extra: Any) -> Result:
        return Result(
            kind=KIND, scale=self.scale, config=self.config, seeds=list(self.seeds),
            data_copy=self.data_copy, provenance=provenance(device, **extra),
            data={"targets": self.targets, "success": self.success, "mean": self.mean,
                  "n_images": self.n_images},
        )

    def write(self, path: str | os.PathLike, device: Any = None, **extra: Any) -> Path:
        """Write ``results.json`` (a versioned result file)."""
        return write_result(path, self.to_result(device, **extra))

    @classmethod
    def read(cls, path: str | os.PathLike) -> TransferResult:
        r = read_result(path, kind=KIND)
        return cls(targets=list(r.data["targets"]),
                   success=[float("nan") if s is None else s for s in r.data["success"]],
                   n_images=int(r.data["n_images"]), config=r.config, scale=r.scale,
                   seeds=r.seeds, data_copy=r.data_copy)


def save_adversarial(path: str | os.PathLike, x_clean: torch.Tensor, x_adv: torch.Tensor,
                     labels: torch.Tensor) -> Path:
    """Write ``x_clean``, ``x_adv`` (float32 N x 3 x H x W in [0, 1]) and ``labels`` (int64)."""
    if x_clean.shape != x_adv.shape or x_adv.ndim != 4 or labels.shape != (len(x_adv),):
        raise FlatnessError(
            f"adversarial archive needs matching N x C x H x W images and N labels, got "
            f"{tuple(x_clean.shape)}, {tuple(x_adv.shape)}, {tuple(labels.shape)}")
    arrays = {
        "x_clean": x_clean.detach().float().cpu().numpy(),
        "x_adv": x_adv.detach().float().cpu().numpy(),
        "labels": labels.detach().long().cpu().numpy(),
    }
    write_npz(path, **arrays)
    return Path(path)


def load_adversarial(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an archive written by :func:`save_adversarial`."""
    path = Path(path)
    if not path.is_file():
        raise FlatnessError(f"adversarial archive {path} does not exist; run the attack first")
    with np.load(path) as data:
        missing = {"x_clean", "x_adv", "labels"} - set(data.files)
        if missing:
            raise FlatnessError(f"{path} lacks {', '.join(sorted(missing))}; not an attack archive")
        return {k: data[k] for k in ("x_clean", "x_adv", "labels")}
