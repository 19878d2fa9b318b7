"""Sharpness over training: Hessian metrics at chosen epochs of a run, from its checkpoints.

Each epoch's metrics are cached in the run directory
(``<run>/sharpness/<settings-key>/epoch_NNNN.json``, keyed by a hash of every setting that
changes the numbers), so asking again, or for more epochs, computes only what is missing; the
assembled curve is a versioned ``sharpness`` result. The images are the first ``n_images`` of a
seeded class-balanced subset of the run's own training images (its ``train_subset``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from flatness.device import resolve_device
from flatness.errors import FlatnessError
from flatness.io import to_jsonable, write_json
from flatness.provenance import provenance
from flatness.results import Result, write_result
from flatness.sharpness.metrics import as_images, hessian_metrics

# 2: the fast engine's defaults changed the numbers (deflated trace, Lanczos change rule)
CACHE_VERSION = 2


def _open_run(run: Any):
    from flatness.training import Run

    return run if isinstance(run, Run) else Run.open(run)


def settings_key(settings: dict[str, Any]) -> str:
    """A short hash of the settings that determine the metrics (device excluded)."""
    text = json.dumps(to_jsonable({"v": CACHE_VERSION, **settings}), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_result_path(run: Any, settings: dict[str, Any]) -> Path:
    """``<run>/sharpness/sharpness-<key>.json``."""
    return _open_run(run).dir / "sharpness" / f"sharpness-{settings_key(settings)}.json"


def run_images(run: Any, n_images: int | None, seed: int, data: str | os.PathLike | None = None,
               split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded class-balanced subset of a run's own training images (or of the test set).

    ``split="train"``: from the run's training subset (``train_subset``, ``subset_seed``);
    ``"test"``: from the whole test set. Float images in [0, 1], N x 3 x H x W, and labels.
    Refuses a data copy other than the one the run was trained on.
    """
    from flatness.data import load_dataset

    run = _open_run(run)
    config = run.config
    train_set, test_set = load_dataset(config.dataset, data)
    if train_set.source != run.data_source:
        raise FlatnessError(f"data copy {train_set.source!r} is not the one run {run.dir.name} "
                            f"was trained on ({run.data_source!r}); pass that copy with --data")
    pool = (train_set.subset(config.train_subset, config.subset_seed) if split == "train"
            else test_set)
    subset = pool.subset(None if n_images is None else min(n_images, len(pool)), seed)
    return as_images(subset.images), torch.as_tensor(subset.labels)


def sharpness_settings(*, engine: str = "fast", n_images: int = 10_000, batch_size: int = 100,
                       seed: int = 0, **metric_kwargs: Any) -> dict[str, Any]:
    """Every setting of :func:`sharpness_over_training` that changes the numbers."""
    return {"engine": engine, "n_images": n_images, "batch_size": batch_size, "seed": seed,
            **dict(sorted(metric_kwargs.items()))}


def sharpness_over_training(run: Any, epochs: Sequence[int], *, engine: str = "fast",
                            n_images: int = 10_000, batch_size: int = 100, seed: int = 0,
                            device: Any = None, data: str | os.PathLike | None = None,
                            out: str | os.PathLike | None = None, recompute: bool = False,
                            scale: str = "custom", **metric_kwargs: Any) -> Result:
    """Hessian metrics of ``run`` at each of ``epochs`` (cached per epoch), as a result file.

    ``metric_kwargs`` go to :func:`~flatness.sharpness.hessian_metrics` (``top_k``,
    ``which``, ``tol``, ``trace_samples``, ...). The result is written to ``out`` (default
    :func:`default_result_path`) and returned.
    """
    run = _open_run(run)
    if not epochs:
        raise FlatnessError("no epochs given: pass the checkpoint epochs to measure, e.g. 10,50")
    available = set(run.checkpoint_epochs())
    missing = [e for e in epochs if e not in available]
    if missing:
        raise FlatnessError(f"run {run.dir.name} has no checkpoint for epochs {missing}; "
                            f"available: {sorted(available) or 'none'}")
    settings = sharpness_settings(engine=engine, n_images=n_images, batch_size=batch_size,
                                  seed=seed, **metric_kwargs)
    key = settings_key(settings)
    cache = run.dir / "sharpness" / key
    dev = resolve_device(device)
    start = time.perf_counter()
    config = run.config
    images = labels = None
    per_epoch = []
    for epoch in epochs:
        path = cache / f"epoch_{epoch:04d}.json"
        if path.is_file() and not recompute:
            per_epoch.append(json.loads(path.read_text()))
            continue
        if images is None:  # decode the data only when something must be computed
            images, labels = run_images(run, n_images, seed, data)
        model = run.load_model(epoch, dev)
        metrics = hessian_metrics(model, images, labels, engine=engine, batch_size=batch_size,
                                  seed=seed, device=dev, **metric_kwargs)
        metrics = to_jsonable({"epoch": epoch, **metrics})
        write_json(path, metrics)
        per_epoch.append(metrics)
    data_block = {
        "epochs": list(epochs),
        "top_eigenvalue": [m["eigenvalues"][0] for m in per_epoch],
        "eigenvalues": [m["eigenvalues"] for m in per_epoch],
        "trace": [m.get("trace") for m in per_epoch],
        "trace_stderr": [m.get("trace_stderr") for m in per_epoch],
        "lr": [config.lr_at(e) for e in epochs],
        "per_epoch": per_epoch,
    }
    result = Result(
        kind="sharpness", scale=scale,
        config={"run": run.dir.name, "run_id": run.info.get("run_id"), "settings_key": key,
                "train": config.to_dict(), **settings},
        data=data_block, seeds=[config.seed], data_copy=run.data_source,
        provenance=provenance(dev, wall_time_s=round(time.perf_counter() - start, 3)),
    )
    write_result(Path(out) if out is not None else default_result_path(run, settings), result)
    return result
