"""Read CIFAR-10 from the official python archive through torchvision, downloading it if absent.

torchvision checks the files' MD5 sums and downloads ``cifar-10-python.tar.gz`` into the folder
when asked; we only turn its failures (no network, corrupt files) into one-line errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flatness.data.arrays import CIFAR10_CLASSES
from flatness.errors import FlatnessError

BASE_FOLDER = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"


def is_official_folder(path: Path) -> bool:
    """Whether a folder holds the official archive (extracted or not)."""
    return (path / BASE_FOLDER).is_dir() or (path / ARCHIVE_NAME).is_file()


def ensure_downloaded(root: Path) -> None:
    """Download and extract the official archive into ``root`` unless already there."""
    from torchvision.datasets import CIFAR10

    if (root / BASE_FOLDER).is_dir():
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(root, train=False, download=True)
    except Exception as exc:  # URLError, socket errors, HTTP errors, checksum mismatch ...
        raise FlatnessError(
            f"could not download CIFAR-10 into {root} (no network? {type(exc).__name__}: {exc}); "
            "pass --data PATH to an offline copy (an image-folder tree or its .tar.gz, e.g. "
            "shared/data/cifar10-jpeg.tar.gz) or set FLATNESS_DATA"
        ) from None


def read_official(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (uint8 (N, 32, 32, 3) images, int64 labels)}`` from the official batches."""
    from torchvision.datasets import CIFAR10

    out = {}
    for split in ("train", "test"):
        try:
            ds = CIFAR10(root, train=split == "train", download=False)
        except Exception as exc:  # RuntimeError "not found or corrupted", unpickling errors
            raise FlatnessError(
                f"corrupt official CIFAR-10 files in {root / BASE_FOLDER} "
                f"({type(exc).__name__}: {exc}); delete that folder to download it again, "
                "or pass --data PATH to another copy"
            ) from None
        if tuple(ds.classes) != CIFAR10_CLASSES:
            raise FlatnessError(
                f"unexpected classes {ds.classes} in {root / BASE_FOLDER}; expected the CIFAR-10 "
                "classes: delete that folder to download it again"
            )
        images = np.ascontiguousarray(ds.data, dtype=np.uint8)
        if images.shape[1:] != (32, 32, 3):
            raise FlatnessError(
                f"wrong image size {images.shape[1:]} in {root / BASE_FOLDER}; CIFAR-10 images "
                "are 32x32x3: delete that folder to download it again"
            )
        out[split] = (images, np.asarray(ds.targets, dtype=np.int64))
    return out


def official_fingerprint(root: Path) -> str:
    """Sizes and modification times of the batch files: changes when the copy changes."""
    folder = root / BASE_FOLDER
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
             for p in sorted(folder.iterdir()) if p.is_file()]
    return f"{folder.resolve()}|" + "|".join(parts)
