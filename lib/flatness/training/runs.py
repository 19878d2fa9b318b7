"""A run directory: configuration, per-epoch metrics, checkpoints, status and provenance.

A run is the store entry of a training configuration (:mod:`flatness.store`): its directory is
named by a readable prefix and :meth:`~flatness.training.TrainConfig.run_id`, the store key of
the configuration (precision resolved) and the data copy; training holds its lock. Layout of
``<runs>/<name>/``::

    config.json        the TrainConfig, the run id and the data copy
    metrics.jsonl      one JSON line per finished epoch
    checkpoints/       epoch_NNNN.pt model weights (state_dict; loaded with weights_only=True),
                       state_NNNN.pt the whole training state at a state epoch (resumed branches)
    resume.pt          everything needed to continue after an interruption, bit for bit
    status.json        "running", "complete" or "diverged" (with its message)
    provenance.json    code commit, device, versions, wall time, data copy (when complete)

Every file is written atomically, so an interrupted run leaves a consistent directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flatness.errors import FlatnessError
from flatness.io import save_torch, write_json, write_text
from flatness.store import namespace_dir
from flatness.training.config import TrainConfig


def runs_root(out: str | os.PathLike | None = None) -> Path:
    """Where runs live: ``out`` if given, else ``<cache>/runs``."""
    if out is None:
        return namespace_dir("runs")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Run:
    """A handle on one run directory."""

    dir: Path

    # -- files ------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def resume_path(self) -> Path:
        return self.dir / "resume.pt"

    @property
    def status_path(self) -> Path:
        return self.dir / "status.json"

    def state_path(self, epoch: int) -> Path:
        """The whole training state after ``epoch`` (a state epoch of the configuration)."""
        return self.dir / "checkpoints" / f"state_{epoch:04d}.pt"

    def checkpoint_path(self, epoch: int) -> Path:
        return self.dir / "checkpoints" / f"epoch_{epoch:04d}.pt"

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """Open an existing run directory (clear error if it is not one)."""
        run = cls(Path(path))
        if not run.config_path.is_file():
            raise FlatnessError(f"{path} is not a flatness run directory (no config.json)")
        return run

    @property
    def info(self) -> dict[str, Any]:
        return self._read_json(self.config_path)

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.info["config"])

    @property
    def data_source(self) -> str:
        return self.info["data_source"]

    @property
    def status(self) -> dict[str, Any]:
        if not self.status_path.is_file():
            return {"status": "missing"}
        return self._read_json(self.status_path)

    @property
    def is_complete(self) -> bool:
        return self.status.get("status") == "complete"

    @property
    def provenance(self) -> dict[str, Any]:
        path = self.dir / "provenance.json"
        return self._read_json(path) if path.is_file() else {}

    def metrics(self) -> list[dict[str, Any]]:
        """The per-epoch metrics recorded so far."""
        if not self.metrics_path.is_file():
            return []
        try:
            return [json.loads(line) for line in self.metrics_path.read_text().splitlines()
                    if line]
        except json.JSONDecodeError:
            raise self._corrupt(self.metrics_path) from None

    def checkpoint_epochs(self) -> list[int]:
        folder = self.dir / "checkpoints"
        if not folder.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in folder.glob("epoch_*.pt"))

    def load_state_dict(self, epoch: int | None = None) -> dict[str, torch.Tensor]:
        """Weights saved for ``epoch`` (default: the last epoch)."""
        epoch = self.config.epochs if epoch is None else epoch
        path = self.checkpoint_path(epoch)
        if not path.is_file():
            raise FlatnessError(
                f"run {self.dir.name} has no checkpoint for epoch {epoch}; available: "
                f"{self.checkpoint_epochs() or 'none'} (train with checkpoint_epochs including it)"
            )
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - corrupt file: say which and how to fix
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise FlatnessError(
                f"checkpoint {path} is unreadable ({reason}); delete it and retrain"
            ) from None

    def load_model(self, epoch: int | None = None, device: Any = "cpu") -> nn.Module:
        """The model of ``epoch`` (default: last), in eval mode on ``device``."""
        from flatness.models import build_model

        config = self.config
        model = build_model(config.arch, num_classes=self.info.get("num_classes", 10),
                            width=config.width, depth=config.depth)
        model.load_state_dict(self.load_state_dict(epoch))
        return model.to(device).eval()

    def _read_json(self, path: Path) -> Any:
        """A JSON file of the run; a corrupt one is a one-line error."""
        try:
            return json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self._corrupt(path) from None

    def _corrupt(self, path: Path) -> FlatnessError:
        return FlatnessError(f"run file {path} is corrupt; delete the run directory "
                             f"{self.dir} to train it again")

    # -- writing ----------------------------------------------------------------------------
    def write_config(self, config: TrainConfig, data_source: str, num_classes: int) -> None:
        write_json(self.config_path, {
            "config": config.to_dict(),
            "run_id": config.run_id(data_source),
            "data_source": data_source,
            "num_classes": num_classes,
        })

    def set_status(self, status: str, **details: Any) -> None:
        write_json(self.status_path, {"status": status, **details})

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def save_checkpoint(self, epoch: int, state_dict: dict[str, torch.Tensor]) -> None:
        weights = {k: v.detach().cpu() for k, v in state_dict.items()}
        save_torch(self.checkpoint_path(epoch), weights)
