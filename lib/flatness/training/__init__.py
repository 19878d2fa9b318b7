"""Training: configurations identified by their hash, run directories, the engine."""

from flatness.training.config import TrainConfig
from flatness.training.engine import train
from flatness.training.runs import Run, runs_root

__all__ = ["Run", "TrainConfig", "runs_root", "train"]
