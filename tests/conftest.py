"""Shared pytest fixtures: an isolated cache, a tiny synthetic CIFAR-10 copy, the real copy."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from flatness.data import CIFAR10_CLASSES

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_worker():
    """One torch thread per test process: tests run in parallel (pytest -n 2) and small models
    are slower with several threads fighting over two cores."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point FLATNESS_CACHE at a per-session folder so tests never touch ~/.cache, and the
    ledger at an empty one so no test reads (or writes) the committed results/ledger; and
    the CPU's native bf16 declared absent, so that ``auto`` plans alike on every machine."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FLATNESS_CACHE", str(tmp_path_factory.mktemp("flatness-cache")))
    patch.setenv("FLATNESS_LEDGER", str(tmp_path_factory.mktemp("flatness-ledger")))
    # the suite describes a CPU without native bf16 (what the committed cpu results ran on),
    # whatever CPU runs it: ``auto`` means fp32 on CPU here, in subprocesses and kernels too
    patch.setenv("FLATNESS_NATIVE_BF16", "0")
    yield
    patch.undo()


def write_image_folder(root: Path, counts: tuple[int, int] = (6, 2),
                       classes: Sequence[str] = CIFAR10_CLASSES, size: tuple[int, int] = (32, 32),
                       fmt: str = "JPEG", prefix: str = "", seed: int = 0) -> Path:
    """Write ``<root>/<prefix>{train,test}/<class>/NNNN.<ext>`` random images; returns ``root``.

    Each class has its own mean colour plus noise, so a model can tell the classes apart.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    for split, count in zip(("train", "test"), counts):
        for label, name in enumerate(classes):
            folder = root / prefix / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = np.array([37 * label, 91 * label + 40, 53 * label + 90]) % 256
            for i in range(count):
                noise = rng.integers(-40, 41, size=(size[1], size[0], 3))
                pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.{ext}", format=fmt)
    return root


def tar_gz(folder: Path, archive: Path) -> Path:
    """Pack the contents of ``folder`` (without ``folder`` itself) into ``archive`` (.tar.gz)."""
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


@pytest.fixture(scope="session")
def make_cifar_copy() -> Callable[..., Path]:
    """Build a synthetic copy: ``make_cifar_copy(dir, archive=True, **write_image_folder_kwargs)``.

    Returns the ``.tar.gz`` (``dir/cifar.tar.gz``) or, with ``archive=False``, the tree
    (``dir/tree``).
    """
    def make(directory: Path, archive: bool = True, **kwargs) -> Path:
        tree = write_image_folder(Path(directory) / "tree", **kwargs)
        return tar_gz(tree, Path(directory) / "cifar.tar.gz") if archive else tree

    return make


@pytest.fixture(scope="session")
def cifar_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CIFAR-10 image-folder ``.tar.gz``: 10 classes x (6 train + 2 test) 32x32 JPEGs."""
    root = tmp_path_factory.mktemp("cifar-tiny")
    folder = write_image_folder(root / "tree")
    return tar_gz(folder, root / "cifar-tiny.tar.gz")


@pytest.fixture(scope="session")
def shared_cifar() -> Path:
    """The project's offline CIFAR-10 copy ($FLATNESS_DATA overrides); skips when absent."""
    path = Path(os.environ.get("FLATNESS_DATA") or SHARED_CIFAR)
    if not path.exists():
        pytest.skip(f"offline CIFAR-10 copy not found at {path}")
    return path


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory: pytest.TempPathFactory, shared_cifar):
    """The real book (every chapter of notebooks/) executed at smoke scale in a scratch copy.

    Built once per test session, also when pytest-xdist runs several workers: the first
    worker builds it under a file lock, the others read its report. Returns a namespace with
    ``runs`` (name, status, error), ``html_ok``, ``warnings``, ``log`` and ``html_dir``.
    """
    import json
    import shutil
    from types import SimpleNamespace

    from filelock import FileLock

    from flatness.book.build import build_book
    from flatness.paths import repo_root

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "smoke-book"
    summary = shared / "smoke-book.json"
    with FileLock(str(shared / "smoke-book.lock")):
        if not summary.is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            source = repo_root()
            for name in ("_config.yml", "_toc.yml"):
                shutil.copy(source / name, root / name)
            shutil.copytree(source / "notebooks", root / "notebooks")
            shutil.copytree(source / "book", root / "book", ignore=shutil.ignore_patterns(
                "_build", "chapters", "reproducibility.md"))
            patch = pytest.MonkeyPatch()
            patch.setenv("FLATNESS_DATA", str(shared_cifar))  # the chapters' kernels inherit it
            patch.setenv("FLATNESS_RESULTS", str(root / "results"))  # nothing committed: compute
            patch.setenv("OMP_NUM_THREADS", "1")
            try:
                names = sorted(p.stem for p in (root / "notebooks").glob("*.ipynb"))
                report = build_book(root, chapters=names, parameters={"scale": "smoke"},
                                    echo=lambda *a, **k: None)
            finally:
                patch.undo()
            summary.write_text(json.dumps({
                "runs": [{"name": r.name, "status": r.status, "error": r.error}
                         for r in report.runs],
                "html_ok": report.html_ok, "warnings": list(report.warnings),
                "log": str(report.log), "html_dir": str(report.html_dir)}))
    data = json.loads(summary.read_text())
    return SimpleNamespace(runs=[SimpleNamespace(**r) for r in data["runs"]],
                           html_ok=data["html_ok"], warnings=data["warnings"], log=data["log"],
                           html_dir=Path(data["html_dir"]))
