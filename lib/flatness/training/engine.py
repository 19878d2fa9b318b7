"""The training engine: one loop for every minimizer, data and augmentation on the device.

Per step there is no host-device synchronisation: losses and correct counts accumulate in
device tensors and are read once per epoch. The model runs channels-last under the precision
that ``config.precision`` resolves to (``auto``: bf16 autocast on CUDA and on CPUs with native
bf16, fp32 elsewhere; recorded in every epoch's metrics), optionally ``torch.compile``-d. Two-pass
minimizers plug in through the closure-based step API of :mod:`flatness.minimizers.base`.

Runs are resumable bit for bit: after every epoch the model, the minimizer (base optimizer
included), the device random generator and the metrics are saved atomically to ``resume.pt``.

A run with ``config.init_from`` starts from its parent's checkpoint (the parent is trained
first when missing) with a fresh optimizer state, and trains the remaining epochs of its own
schedule; its metrics begin with the parent's epochs, marked ``inherited``. A resumed branch
(``init_from``'s ``resume``) takes the parent's whole state saved at one of its
``state_epochs`` instead, and its checkpoints up to there: the run a fresh start with the
branch's schedule trains, bit for bit.

Adversarial training takes its adversary from the caller (:data:`Adversary`, e.g.
:func:`flatness.attacks.training_adversary`): training does not depend on the attacks.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flatness.data import DeviceDataset, load_dataset
from flatness.device import autocast, exact_fp32, memory_format, resolve_device
from flatness.errors import FlatnessError
from flatness.io import copy_file, save_torch, write_json
from flatness.minimizers import build_minimizer, get_minimizer_class
from flatness.models import ARCHITECTURES, build_model
from flatness.precision import resolve_precision
from flatness.progress import Progress
from flatness.provenance import provenance
from flatness.store import locked
from flatness.training.config import TrainConfig
from flatness.training.runs import Run, runs_root

#: Crafts training inputs: ``adversary(model, x, y, generator)`` (model in eval mode).
Adversary = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def _restored(run: Run) -> bool:
    """Whether the committed ledger archives this finished run (a target model) and it was
    put in place instead of being trained again (:func:`flatness.ledger.restore_run`)."""
    from flatness import ledger  # the ledger reads runs: imported when first needed

    return ledger.restore_run(run.dir)


def train(
    config: TrainConfig,
    *,
    data: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    out: str | os.PathLike | None = None,
    compile: bool = False,
    until_epoch: int | None = None,
    progress: bool | None = None,
    adversary: Adversary | None = None,
) -> Run:
    """Train ``config`` (or reuse its finished run, here or archived in the ledger) and
    return the run.

    The run is named by ``config`` with its precision resolved on ``device``.
    ``until_epoch`` stops after that epoch, leaving a resumable run (the next call continues).
    ``progress=None``: a bar on a terminal, a line per epoch in a log, nothing in a notebook.
    ``adversary`` crafts the inputs of adversarial training (required when
    ``config.adv_eps > 0``).
    """
    _check_names(config)  # fail fast, before any data is decoded
    dev = resolve_device(device)
    config = config.resolved(dev)
    train_set, test_set = load_dataset(config.dataset, data)
    run = Run(runs_root(out) / config.run_name(train_set.source))
    if run.status.get("status") == "complete" or _restored(run):
        return run
    parent = None
    if config.parent is not None:
        parent = train(config.parent, data=data, device=dev, out=out, compile=compile,
                       progress=progress, adversary=adversary)
    # processes sharing a cache (Ray tasks, two terminals) train each run once: the second
    # waits here, then finds the run complete (or resumes it where the first stopped)
    with locked(run.dir):
        status = run.status
        if status.get("status") == "complete":
            return run
        if status.get("status") == "diverged":
            raise FlatnessError(f"run {run.dir} diverged earlier: {status.get('message')}")
        if config.adv_eps > 0 and config.adv_steps > 0 and adversary is None:
            raise FlatnessError("this configuration trains adversarially: pass its adversary "
                                "(adversary=flatness.attacks.training_adversary(config))")

        train_set = train_set.subset(config.train_subset, config.subset_seed)
        eval_set = test_set.subset(config.eval_subset, 0)
        trainer = _Trainer(config, run, train_set, eval_set, dev, compile=compile,
                           adversary=adversary, parent=parent)
        return trainer.fit(until_epoch=until_epoch, progress=progress)


class _Trainer:
    """State of one training run between epochs."""

    def __init__(self, config: TrainConfig, run: Run, train_set: Any, eval_set: Any,
                 device: torch.device, *, compile: bool,
                 adversary: Adversary | None = None, parent: Run | None = None) -> None:
        self.config = config
        self.adversary = adversary
        self.parent = parent
        self.run = run
        self.device = device
        self.precision = resolve_precision(config.precision, device)  # "bf16" or "fp32"
        exact_fp32(device, self.precision)
        self.train_data = DeviceDataset.from_arrays(train_set, device)
        self.eval_data = DeviceDataset.from_arrays(eval_set, device)
        self.num_classes = len(train_set.classes)
        self.data_source = train_set.source

        torch.manual_seed(config.seed)  # identical initial weights on every device
        model = build_model(config.arch, num_classes=self.num_classes, width=config.width,
                            depth=config.depth)
        self.mem_format = memory_format(device, model)
        self.model = model.to(device, memory_format=self.mem_format)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.model) if compile else self.model
        )
        base = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay, nesterov=config.nesterov,
        )
        self.minimizer = build_minimizer(config.minimizer, self.model, base,
                                         **_minimizer_params(config))
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.metrics: list[dict[str, Any]] = []
        self.epoch = 0
        self.wall_time = 0.0

    # -- persistence ------------------------------------------------------------------------
    def _save_resume_state(self, path: Path | None = None) -> None:
        """The whole training state after the current epoch (the run's resume file, or a
        state epoch's file that a resumed branch continues)."""
        save_torch(self.run.resume_path if path is None else path, {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "minimizer": self.minimizer.state_dict(),
            "generator": self.generator.get_state(),
            "metrics": self.metrics,
            "wall_time": self.wall_time,
        })

    def _load_resume_state(self) -> None:
        if self.run.resume_path.is_file():
            self._load_state(self.run.resume_path)

    def _load_state(self, path: Path, own: bool = True) -> None:
        """Continue from a saved training state: this run's (``own``: its metrics and wall
        time too) or its parent's at a state epoch."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise FlatnessError(
                f"cannot resume from {path} ({exc}); delete it to restart the run") from None
        self.model.load_state_dict(state["model"])
        self.minimizer.load_state_dict(state["minimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch = int(state["epoch"])
        if own:
            self.metrics = list(state["metrics"])
            self.wall_time = float(state["wall_time"])

    def _start_from_parent(self, parent: Run) -> None:
        """The parent's weights (BatchNorm statistics included) and metrics at ``init_from``'s
        epoch; the optimizer (momentum, SAM's state) starts afresh. A resumed branch takes the
        parent's whole training state there instead (momentum, data order), and its
        checkpoints up to that epoch, so that it is the run a fresh start would train."""
        epoch = self.config.init_from["epoch"]
        if self.config.resumes:
            state = parent.state_path(epoch)
            if not state.is_file():
                raise FlatnessError(f"run {parent.dir.name} kept no training state at epoch "
                                    f"{epoch} ({state.name}): retrain it with that state epoch")
            self._load_state(state, own=False)
            for kept in self.config.checkpoint_epochs:
                if kept <= epoch:
                    copy_file(parent.checkpoint_path(kept), self.run.checkpoint_path(kept))
        else:
            self.model.load_state_dict(parent.load_state_dict(epoch))
        self.metrics = [dict(row, inherited=True) for row in parent.metrics()
                        if row["epoch"] <= epoch]
        self.epoch = epoch

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, *, until_epoch: int | None, progress: bool | None) -> Run:
        config = self.config
        self.run.dir.mkdir(parents=True, exist_ok=True)
        self.run.write_config(config, self.data_source, self.num_classes)
        self._load_resume_state()
        if self.epoch == 0 and self.parent is not None:
            self._start_from_parent(self.parent)
        self.run.set_status("running", epoch=self.epoch)
        last = min(config.epochs, until_epoch) if until_epoch is not None else config.epochs
        bar = Progress(config.epochs, f"train {self.run.dir.name[:40]}", "epoch",
                       initial=self.epoch, progress=progress)
        for epoch in range(self.epoch + 1, last + 1):
            started = time.perf_counter()
            row = self._train_epoch(epoch)
            eval_model = self.minimizer.end_epoch(epoch, self._update_bn)
            row.update(self._evaluate(eval_model))
            self.wall_time += time.perf_counter() - started
            row["wall_time_s"] = round(self.wall_time, 3)
            self.metrics.append(row)
            self.epoch = epoch
            if not math.isfinite(row["train_loss"]):
                self.run.write_metrics(self.metrics)
                message = (f"training diverged at epoch {epoch} (train loss {row['train_loss']}); "
                           "lower the learning rate or the minimizer's rho")
                self.run.set_status("diverged", epoch=epoch, message=message)
                bar.close()
                raise FlatnessError(f"{message}; details in {self.run.dir}")
            if epoch in config.checkpoint_epochs or epoch == config.epochs:
                self.run.save_checkpoint(epoch, _unwrap(eval_model).state_dict())
            if epoch in config.state_epochs:
                self._save_resume_state(self.run.state_path(epoch))
            self.run.write_metrics(self.metrics)
            self._save_resume_state()
            bar.advance(note=f"loss {row['train_loss']:.3f}, test acc {row['test_acc']:.3f}")
        bar.close()
        if self.epoch >= config.epochs:
            self._finish()
        else:
            self.run.set_status("running", epoch=self.epoch)
        return self.run

    def _finish(self) -> None:
        write_json(self.run.dir / "provenance.json", provenance(
            self.device, wall_time_s=round(self.wall_time, 3), data_copy=self.data_source,
            seed=self.config.seed, epochs=self.config.epochs,
            autocast=self.precision, precision=self.precision,
        ))
        self.run.set_status("complete", epoch=self.epoch)
        self.run.resume_path.unlink(missing_ok=True)

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        config = self.config
        lr = config.lr_at(epoch)
        for group in self.minimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for x, y in self.train_data.batches(config.batch_size, shuffle=True, augment=config.augment,
                                            generator=self.generator,
                                            memory_format=self.mem_format):
            if config.adv_eps > 0 and config.adv_steps > 0:
                x = self._adversarial(x, y)
            first: list[tuple[torch.Tensor, torch.Tensor]] = []

            def closure(x: torch.Tensor = x, y: torch.Tensor = y,
                        first: list = first) -> torch.Tensor:
                with autocast(self.device, precision=self.precision):
                    logits = self.forward(x)
                    loss = F.cross_entropy(logits.float(), y)
                loss.backward()
                if not first:
                    first.append((loss.detach(), logits.detach()))
                return loss.detach()

            self.minimizer.zero_grad(set_to_none=True)
            self.minimizer.step(closure)
            batch_loss, logits = first[0]
            loss_sum += batch_loss * y.numel()
            correct += (logits.argmax(1) == y).sum()
            seen += y.numel()
        return {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss_sum.item() / max(seen, 1),
            "train_acc": correct.item() / max(seen, 1),
            "precision": self.precision,
        }

    def _adversarial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial training inputs from the caller's adversary, crafted in eval mode."""
        self.model.eval()
        try:
            x_adv = self.adversary(self.model, x, y, self.generator)
        finally:
            self.model.train()
        return x_adv.detach()

    @torch.no_grad()
    def _update_bn(self, model: nn.Module) -> None:
        """Recompute BatchNorm statistics over the training set (SWA), deterministically."""
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = {m: m.momentum for m in norms}
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        was_training = model.training
        model.train()
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 7919)
        for x, _ in self.train_data.batches(self.config.batch_size, shuffle=True,
                                            augment=self.config.augment, generator=generator,
                                            memory_format=self.mem_format):
            with autocast(self.device, precision=self.precision):
                model(x)
        for m in norms:
            m.momentum = momenta[m]
        model.train(was_training)

    @torch.inference_mode()
    def _evaluate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for x, y in self.eval_data.batches(512, shuffle=False, augment=False, generator=None,
                                           memory_format=self.mem_format):
            with autocast(self.device, precision=self.precision):
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        model.train(was_training)
        n = max(len(self.eval_data), 1)
        return {"test_loss": loss_sum.item() / n, "test_acc": correct.item() / n}


def _check_names(config: TrainConfig) -> None:
    """Unknown architecture or minimizer: a clear error before any work starts."""
    if config.arch not in ARCHITECTURES:
        raise FlatnessError(
            f"unknown architecture {config.arch!r}; choose one of: {', '.join(ARCHITECTURES)}"
        )
    get_minimizer_class(config.minimizer)


def _minimizer_params(config: TrainConfig) -> dict[str, Any]:
    """The minimizer's hyper-parameters, with the run length for those that need it (SWA)."""
    params = dict(config.minimizer_params)
    if "epochs" in get_minimizer_class(config.minimizer).hyperparameters:
        params.setdefault("epochs", config.epochs)
    return params


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside wrappers (SWA's AveragedModel, torch.compile)."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)
