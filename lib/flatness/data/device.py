"""The whole dataset on the compute device, served as shuffled, augmented float batches.

Keeping the uint8 images on the device (150 MB for CIFAR-10 training) removes the host data
pipeline altogether: a batch is one gather, the augmentation a few tensor ops, the conversion
to float one kernel. Nothing here synchronises the host with the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from flatness.data.arrays import ArrayDataset
from flatness.data.augment import augment_batch
from flatness.errors import FlatnessError


class DeviceDataset:
    """Images as uint8 (N, 3, H, W) and int64 labels (N), both on one device."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 classes: tuple[str, ...] = (), name: str = "cifar10") -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise FlatnessError(f"DeviceDataset needs uint8 (N, 3, H, W) images, got "
                                f"{images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],) or labels.device != images.device:
            raise FlatnessError("DeviceDataset needs one int64 label per image on the same device")
        self.images = images
        self.labels = labels.long()
        self.classes = tuple(classes)
        self.name = name

    @classmethod
    def from_arrays(cls, ds: ArrayDataset, device: torch.device | str) -> DeviceDataset:
        """Copy an :class:`ArrayDataset` (NHWC uint8) to ``device`` as NCHW uint8."""
        images = torch.from_numpy(np.ascontiguousarray(ds.images)).to(device)
        images = images.permute(0, 3, 1, 2).contiguous()
        labels = torch.from_numpy(ds.labels).to(device)
        return cls(images, labels, ds.classes, ds.name)

    @property
    def device(self) -> torch.device:
        """Where the images and labels live."""
        return self.images.device

    def __len__(self) -> int:
        return self.images.shape[0]

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """How many batches :meth:`batches` yields per epoch."""
        full, rest = divmod(len(self), batch_size)
        return full + (1 if rest and not drop_last else 0)

    def batches(self, batch_size: int, *, shuffle: bool, augment: bool,
                generator: torch.Generator | None, drop_last: bool = False,
                memory_format: torch.memory_format = torch.contiguous_format,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(images float32 in [0, 1] (B, 3, H, W), labels int64 (B))``.

        With ``shuffle`` every sample appears exactly once per epoch (all of them, or all but
        the last partial batch with ``drop_last``), in an order drawn on the device from
        ``generator``; ``augment`` applies :func:`augment_batch` with the same generator.
        ``generator`` must live on this dataset's device (``torch.Generator(device=...)``);
        ``None`` uses torch's global generator for that device.
        """
        if batch_size < 1:
            raise FlatnessError(f"batch size must be positive, got {batch_size}")
        if generator is not None and torch.device(generator.device).type != self.device.type:
            raise FlatnessError(
                f"the generator lives on {generator.device} but the data on {self.device}: "
                f"create it with torch.Generator(device={str(self.device)!r})"
            )
        n = len(self)
        order = torch.randperm(n, generator=generator, device=self.device) if shuffle else None
        for b in range(self.num_batches(batch_size, drop_last)):
            start, stop = b * batch_size, min((b + 1) * batch_size, n)
            if order is None:
                x, y = self.images[start:stop], self.labels[start:stop]
            else:
                idx = order[start:stop]
                x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
            if augment:
                x = augment_batch(x, generator)
            yield x.to(dtype=torch.float32, memory_format=memory_format).div_(255), y
