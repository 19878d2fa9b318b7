"""Build (or reuse) the datasets of one scale: source models, construction, artifacts.

The source models are ordinary cached training runs (:func:`flatness.training.train`): the
robust model with L2 PGD adversarial training, the standard model with the same recipe
without it. ``D_R`` inverts the robust model's representation, ``D_NR`` the standard model's
(Ilyas et al. section 3.1 and their released ``non_robust_CIFAR``); ``D_rand`` / ``D_det`` are
the standard model's targeted adversarial examples relabelled with the target (section 3.2).
A construction saves each finished chunk, so a stopped build (D_R's inversion takes about an
hour on 2 CPU cores at the cpu scale) resumes where it stopped.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flatness.attacks import training_adversary
from flatness.data import ArrayDataset, images_to_tensor, load_cifar10
from flatness.data.derived import (
    DatasetArtifact,
    artifact_path,
    derived_source,
    quantise,
    read_artifact,
    register_name,
    save_artifact,
)
from flatness.device import resolve_device
from flatness.io import save_torch
from flatness.progress import track
from flatness.provenance import provenance
from flatness.robust import construct
from flatness.robust.params import (
    INVERSION_KINDS,
    KINDS,
    RobustParams,
    dataset_key,
    dataset_scale_label,
)
from flatness.scales import Scale, get_scale
from flatness.store import STORE_VERSION
from flatness.training import TrainConfig, train


def model_config(params: RobustParams, robust: bool, precision: str = "auto") -> TrainConfig:
    """The training run of the robust (L2 PGD adversarial training) or standard source model."""
    adv = dict(adv_norm="l2", adv_eps=params.adv_eps, adv_steps=params.adv_steps,
               adv_step_size=params.adv_step_size) if robust else {}
    return TrainConfig(
        arch=params.model.arch, width=params.model.width, depth=params.model.depth,
        dataset="cifar10", train_subset=params.size, subset_seed=params.seed,
        eval_subset=params.eval_subset, epochs=params.model_epochs, lr=params.lr,
        decay_epochs=params.decay_epochs, momentum=params.momentum,
        weight_decay=params.weight_decay, batch_size=params.batch_size, seed=params.seed,
        precision=precision, **adv,
    )


def uses_robust_model(kind: str) -> bool:
    """Only ``D_R`` is built from the robust model."""
    return kind == "d_r"


@dataclass
class Built:
    """A dataset ready for training: the artifact, its key and whether it was just built."""

    kind: str
    key: str
    artifact: DatasetArtifact
    built: bool

    def datasets(self, cifar_test: ArrayDataset) -> tuple[ArrayDataset, ArrayDataset]:
        """(train = this set, test = the original CIFAR-10 test set)."""
        a = self.artifact
        source = derived_source(self.kind, self.key, a.provenance.get("data_copy", "?"))
        return (ArrayDataset(a.images, a.labels, a.classes, source, name=self.kind),
                cifar_test)


def build_dataset(kind: str, scale: str | Scale = "smoke", *, data: str | os.PathLike | None = None,
                  device: str | torch.device | None = None, force: bool = False,
                  precision: str | None = None, **overrides: Any) -> Built:
    """Dataset ``kind`` at ``scale``: read from the store, else build it (and its models).

    The source models train at ``precision`` (default: the scale's), resolved on ``device``.
    Without ``overrides`` the dataset is registered under its name (``d_r@cpu``), which is how
    :func:`flatness.data.load_dataset` and the training runs on it find it.
    """
    scale = get_scale(scale)
    params = RobustParams.from_scale(scale, **overrides)
    params.relevant(kind)  # unknown kind: clear error before any work
    train_set, _ = load_cifar10(data)
    dev = resolve_device(device)
    config = model_config(params, uses_robust_model(kind),
                          precision or scale.precision).resolved(dev)
    key = dataset_key(kind, params, config.run_name(train_set.source), train_set.source)
    path = artifact_path(kind, key)
    if not force and (artifact := read_artifact(path)) is not None:
        return _registered(Built(kind, key, artifact, built=False), scale, train_set.source,
                           overrides)

    started = time.perf_counter()
    run = train(config, data=data, device=dev, adversary=training_adversary(config))
    model_time = time.perf_counter() - started
    model = run.load_model(device=dev)
    subset = train_set.subset(params.size, params.seed)
    x = images_to_tensor(subset.images, dev)
    y = torch.from_numpy(subset.labels).to(dev)
    generator = torch.Generator().manual_seed(params.seed)

    started = time.perf_counter()
    extra: dict[str, Any] = {}
    parts = path.with_suffix(".parts")  # finished chunks: a stop loses one chunk at most
    if force:
        shutil.rmtree(parts, ignore_errors=True)
    if kind in INVERSION_KINDS:
        x0 = construct.start_images(x, params.start, generator)
        (images,) = in_chunks(parts, len(x), params.chunk, f"construct {kind}", lambda s: (
            construct.invert_representation(
                model, x[s], x0[s], iterations=params.iterations,
                step_size=params.inversion_step_size, batch_size=params.chunk, progress=False),),
            dev)
        labels = y
    else:
        targets = (construct.random_targets(y, len(subset.classes), generator)
                   if kind == "d_rand" else construct.next_class_targets(y, len(subset.classes)))
        images, labels = in_chunks(parts, len(x), params.chunk, f"construct {kind}", lambda s: (
            construct.targeted_relabel(
                model, x[s], y[s], targets[s], eps=params.attack_eps, steps=params.attack_steps,
                step_size=params.attack_step_size, batch_size=params.chunk)), dev)
    quantised = quantise(images)
    labels_np = labels.cpu().numpy()
    seconds = time.perf_counter() - started
    if kind in INVERSION_KINDS:  # how well the representations match (start vs end), honestly
        end = images_to_tensor(quantised, dev)
        before = construct.representation_distance(model, x0, x, params.chunk)
        after = construct.representation_distance(model, end, x, params.chunk)
        extra["representation_distance"] = {"start_mean": float(before.mean()),
                                             "end_mean": float(after.mean())}
    else:
        extra["relabelled_fraction_changed"] = float((labels != y).float().mean())
    prov = provenance(
        dev, store=STORE_VERSION, kind=kind, key=key, scale=scale.name, params=params.to_dict(),
        precision=config.precision,
        source_run=run.dir.name, source_model_robust=uses_robust_model(kind),
        data_copy=train_set.source, images=len(labels_np), construction_s=round(seconds, 3),
        images_per_s=round(len(labels_np) / max(seconds, 1e-9), 2),
        source_model_wall_s=run.provenance.get("wall_time_s"),
        model_step_s=round(model_time, 3),
        quantisation="uint8 = round(255 * x), x in [0, 1]", **extra,
    )
    artifact = DatasetArtifact(quantised, labels_np.astype(np.int64), subset.classes, prov)
    save_artifact(path, artifact)
    shutil.rmtree(parts, ignore_errors=True)
    return _registered(Built(kind, key, artifact, built=True), scale, train_set.source, overrides)


def in_chunks(parts: Path, n: int, chunk: int, desc: str,
              compute: Callable[[slice], tuple[torch.Tensor, ...]],
              device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """``compute`` over ``[0, n)`` chunk by chunk, concatenated on ``device``; each finished
    chunk is saved under ``parts`` (atomically) and reused by a later call, so a stopped
    construction resumes.

    Every chunk of the construction depends only on its own images (start images and targets
    are drawn up front), so the result does not depend on where it was stopped; an unreadable
    or mis-sized chunk is recomputed.
    """
    pieces = []
    for i, lo in enumerate(track(range(0, n, chunk), desc, "chunk")):
        s, path = slice(lo, min(lo + chunk, n)), parts / f"{i:05d}.pt"
        piece = _finished_chunk(path, s.stop - s.start)
        if piece is None:
            piece = tuple(t.detach().cpu() for t in compute(s))
            save_torch(path, piece)
        pieces.append(piece)
    return tuple(torch.cat([p[j] for p in pieces]).to(device) for j in range(len(pieces[0])))


def _finished_chunk(path: Path, size: int) -> tuple[torch.Tensor, ...] | None:
    """The chunk saved at ``path``; None when missing, unreadable or not ``size`` long."""
    if not path.is_file():
        return None
    try:
        piece = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a corrupt chunk is recomputed, not trusted
        return None
    return piece if isinstance(piece, tuple) and all(len(t) == size for t in piece) else None


def dataset_name(kind: str, scale: Scale) -> str:
    """The name training configurations use for dataset ``kind`` of ``scale``: ``d_r@cpu``."""
    return f"{kind}@{dataset_scale_label(scale)}"


def _registered(built: Built, scale: Scale, data_source: str,
                overrides: dict[str, Any]) -> Built:
    """``built``, registered under its name unless ``overrides`` made it nameless."""
    if not overrides:
        register_name(dataset_name(built.kind, scale), data_source, built.kind, built.key)
    return built


def build_all(scale: str | Scale, kinds: tuple[str, ...] = KINDS, **kwargs: Any) -> list[Built]:
    """Every dataset in ``kinds`` (models shared through the run cache)."""
    return [build_dataset(kind, scale, **kwargs) for kind in kinds]
