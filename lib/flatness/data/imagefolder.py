"""Read CIFAR-10 from an image-folder tree (``train/<class>/*.jpg``, ``test/<class>/*.jpg``).

The tree may be a folder or a ``.tar.gz`` of it (optionally under one top-level folder); an
archive is read straight from its stream, never extracted to disk. Images are decoded with
Pillow. Every problem (corrupt archive, unexpected class folders, wrong image size, missing
split) becomes a one-line :class:`FlatnessError`.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from flatness.data.arrays import CIFAR10_CLASSES
from flatness.errors import FlatnessError

SPLITS = ("train", "test")
IMAGE_SIZE = (32, 32)
Entry = tuple[str, bytes]  # (relative posix path, file content)


def is_image_folder(path: Path) -> bool:
    """Whether a folder looks like an image-folder tree (split or class folders, maybe wrapped)."""
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
    if names & (set(SPLITS) | set(CIFAR10_CLASSES)):
        return True
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return len(subdirs) == 1 and len(names) == 1 and any(
        (subdirs[0] / s).is_dir() for s in SPLITS)


def read_image_folder(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode an image-folder tree or its archive into ``{split: (images, labels)}``.

    Images are uint8 (N, 32, 32, 3), sorted by label then file name; labels are int64 indices
    into :data:`CIFAR10_CLASSES`.
    """
    entries = _archive_entries(path) if path.is_file() else _folder_entries(path)
    splits = _organise(entries, path)
    return {split: (decode_images(files, path), labels)
            for split, (files, labels) in splits.items()}


def decode_images(files: Sequence[Entry], where: Path) -> np.ndarray:
    """Decode encoded images into one uint8 (N, 32, 32, 3) array; every image must be 32x32."""
    from PIL import Image

    out = np.empty((len(files), *IMAGE_SIZE, 3), dtype=np.uint8)
    for i, (name, blob) in enumerate(_progress(files, f"decoding {where.name}")):
        try:
            with Image.open(io.BytesIO(blob)) as image:
                if image.size != IMAGE_SIZE:
                    raise FlatnessError(
                        f"wrong image size {image.size[0]}x{image.size[1]} for {name} in {where}: "
                        "CIFAR-10 images are 32x32; pass --data PATH to a CIFAR-10 copy"
                    )
                out[i] = np.asarray(image.convert("RGB"))
        except FlatnessError:
            raise
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ...
            raise FlatnessError(
                f"corrupt image {name} in {where} ({type(exc).__name__}: {exc}); "
                "re-create or re-download the data copy"
            ) from None
    return out


def _archive_entries(path: Path) -> list[Entry]:
    """All regular files of a tar archive (any compression), read from the stream.

    A gzip archive is decompressed by :mod:`gzip` and read to its very end: tarfile's stream
    mode alone takes a copy cut at a tar block boundary for a complete, smaller archive."""
    entries = []
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            with tarfile.open(fileobj=stream, mode="r|" if gzipped else "r|*") as archive:
                for member in archive:
                    if member.isfile() and not _hidden(member.name):
                        handle = archive.extractfile(member)
                        assert handle is not None  # regular files always have content
                        entries.append((member.name, handle.read()))
            while stream.read(1 << 20):  # to the end: a cut gzip stream raises EOFError here
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise FlatnessError(
            f"corrupt archive {path} ({type(exc).__name__}: {exc}); it must be a complete "
            ".tar.gz of train/<class>/*.jpg and test/<class>/*.jpg: re-download or re-create it"
        ) from None
    return entries


def _folder_entries(path: Path) -> Iterator[Entry]:
    """All non-hidden regular files under a folder, as (relative posix path, content)."""
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.startswith("."):
                full = Path(dirpath) / filename
                yield full.relative_to(path).as_posix(), full.read_bytes()


def _hidden(name: str) -> bool:
    """Hidden files and macOS archive litter (``.DS_Store``, ``._x``, ``__MACOSX/``)."""
    return any(part.startswith(".") and part not in (".", "..") or part == "__MACOSX"
               for part in PurePosixPath(name).parts)


def _organise(entries: Iterable[Entry], where: Path) -> dict[str, tuple[list[Entry], np.ndarray]]:
    """Group files by split, check the class folders, sort by (label, file name)."""
    items = [(PurePosixPath(name).parts, name, blob) for name, blob in entries]
    items = [(parts[1:] if parts and parts[0] == "." else parts, name, blob)
             for parts, name, blob in items]
    tops = {parts[0] for parts, _, _ in items if len(parts) > 1}
    if not tops & set(SPLITS) and len(tops) == 1:  # one wrapping folder, e.g. cifar10/train/...
        items = [(parts[1:], name, blob) for parts, name, blob in items if len(parts) > 1]
    out = {}
    for split in SPLITS:
        files = [(parts, name, blob) for parts, name, blob in items if parts[0] == split]
        if not files:
            found = sorted({parts[0] for parts, _, _ in items if len(parts) > 1})
            raise FlatnessError(
                f"missing {split}/ split in {where} (top-level folders: {found or 'none'}); "
                "expected train/<class>/*.jpg and test/<class>/*.jpg"
            )
        nested = [name for parts, name, _ in files if len(parts) != 3]
        if nested:
            raise FlatnessError(
                f"unexpected file {nested[0]} in {where}: expected {split}/<class>/<image> "
                "with the 10 CIFAR-10 class folders"
            )
        classes = {parts[1] for parts, _, _ in files}
        if classes != set(CIFAR10_CLASSES):
            missing = sorted(set(CIFAR10_CLASSES) - classes)
            extra = sorted(classes - set(CIFAR10_CLASSES))
            raise FlatnessError(
                f"unexpected class folders in {where} {split}/ (missing: {missing or 'none'}, "
                f"unexpected: {extra or 'none'}); expected exactly the CIFAR-10 classes "
                f"{', '.join(CIFAR10_CLASSES)}"
            )
        label_of = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
        files.sort(key=lambda item: (label_of[item[0][1]], item[0][2]))
        labels = np.array([label_of[parts[1]] for parts, _, _ in files], dtype=np.int64)
        out[split] = ([(name, blob) for _, name, blob in files], labels)
    return out


def _progress(items: Sequence[Entry], desc: str) -> Iterable[Entry]:
    """A tqdm progress bar on a terminal, the bare sequence otherwise."""
    if len(items) < 5000 or not sys.stderr.isatty():
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)
