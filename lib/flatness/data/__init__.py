"""CIFAR-10 (official archive or image-folder copy), decoded once, served from the device.

- :func:`load_cifar10` / :func:`load_dataset`: host-side uint8 :class:`ArrayDataset` pairs.
- :class:`DeviceDataset`: the whole set on the compute device, shuffled augmented batches.
- :func:`augment_batch`: random crop (4-pixel padding) and flip in batched tensor ops.
"""

from flatness.data.arrays import CIFAR10_CLASSES, ArrayDataset, images_to_tensor
from flatness.data.augment import augment_batch
from flatness.data.cifar10 import cifar10_source, load_cifar10
from flatness.data.device import DeviceDataset
from flatness.data.registry import known_datasets, load_dataset, register_dataset

__all__ = [
    "CIFAR10_CLASSES",
    "ArrayDataset",
    "images_to_tensor",
    "DeviceDataset",
    "augment_batch",
    "known_datasets",
    "cifar10_source",
    "load_cifar10",
    "load_dataset",
    "register_dataset",
]
