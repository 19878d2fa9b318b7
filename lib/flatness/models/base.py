"""What every model of the zoo exposes, so attacks and analyses work on all of them.

- Inputs are images in [0, 1]; :class:`Normalize` (CIFAR-10 mean/std) is the first module, so
  every attack works in pixel space.
- ``forward_features(x)`` returns the penultimate representation (N, D) and ``classifier`` is
  the final linear layer: ``forward(x) == classifier(forward_features(x))``. The robust-dataset
  construction of Ilyas et al. matches these representations.
- Activations are ``nn.ReLU`` modules (never ``F.relu``, never in-place), so techniques such as
  LinBP can swap their backward pass through hooks.
- Residual blocks subclass :class:`ResidualBlock`, with a named ``residual`` branch, a named
  ``shortcut`` and a post-addition ``act``; skip-gradient (SGM) and ghost networks hook these.
"""

from __future__ import annotations

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Per-channel standardisation inside the model (inputs stay in [0, 1])."""

    def __init__(self, mean: tuple[float, ...] = CIFAR10_MEAN,
                 std: tuple[float, ...] = CIFAR10_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ResidualBlock(nn.Module):
    """``act(residual(x) + shortcut(x))`` with each part a named, hookable module."""

    residual: nn.Module
    shortcut: nn.Module
    act: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual(x) + self.shortcut(x))


class ZooModel(nn.Module):
    """A classifier ``classifier(forward_features(normalize(x)))``.

    Subclasses build ``self.body`` (input: normalised images, output: (N, D) features) and
    ``self.classifier``.
    """

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.body = body
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.num_classes = num_classes
        self.feature_dim = feature_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))
