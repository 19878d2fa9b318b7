"""In-memory image datasets as uint8 numpy arrays, with seeded class-balanced subsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from flatness.errors import FlatnessError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def images_to_tensor(images: np.ndarray, device: torch.device | str | None = None
                     ) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1], on ``device`` (moved as uint8,
    a quarter of the float32 bytes, then converted there)."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if device is not None:
        x = x.to(device)
    return x.permute(0, 3, 1, 2).float().div_(255)


@dataclass
class ArrayDataset:
    """A labelled image set held on the host: ``images`` uint8 (N, H, W, 3), ``labels`` int64 (N).

    ``source`` identifies the data copy (recorded in provenance); ``name`` the dataset
    (``cifar10`` or a derived set such as ``d_r``).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    name: str = "cifar10"

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise FlatnessError(
                f"dataset {self.name!r}: images must be uint8 (N, H, W, 3), got "
                f"{self.images.dtype} {self.images.shape}; convert them before building it"
            )
        if self.labels.shape != (len(self.images),):
            raise FlatnessError(
                f"dataset {self.name!r}: {len(self.images)} images but labels of shape "
                f"{self.labels.shape}; give one label per image"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, indices: Sequence[int] | np.ndarray) -> ArrayDataset:
        """The samples at ``indices`` (in that order), same classes, source and name."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(self, images=self.images[idx], labels=self.labels[idx])

    def subset(self, n: int | None, seed: int) -> ArrayDataset:
        """``n`` samples, as balanced over classes as possible, drawn with ``seed``.

        Deterministic: the same ``(n, seed)`` always gives the same samples, returned in their
        original order. Class counts differ by at most one (when every class has enough
        samples). ``n=None`` returns the whole dataset unchanged.
        """
        if n is None:
            return self
        if not 0 <= n <= len(self):
            raise FlatnessError(
                f"asked for a subset of {n} samples of {self.name!r}, which has {len(self)}; "
                f"use a size between 0 and {len(self)} (or None for all)"
            )
        return self.select(balanced_indices(self.labels, n, seed))


def balanced_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples taken round-robin over classes in a seeded random order.

    Each sample gets its rank within its class under a seeded shuffle; samples are then taken
    by increasing rank (ties broken by a seeded random order over classes), so every class gives
    its k-th sample before any class gives its (k+1)-th.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    shuffled = labels[order]
    # rank of each shuffled sample within its class: stable sort by class, then position.
    by_class = np.argsort(shuffled, kind="stable")
    sorted_labels = shuffled[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - starts
    class_tiebreak = rng.permutation(int(labels.max(initial=-1)) + 1)
    key = np.lexsort((class_tiebreak[shuffled], rank))
    return np.sort(order[key[:n]])
