"""The study as a graph of cached jobs.

A job is a frozen dataclass: it names the jobs it depends on (:meth:`Job.deps`), has a key
derived from its fields (:meth:`Job.key`), and :meth:`Job.run` computes its small JSON output
or returns the stored one (an entry of :mod:`flatness.store`, keyed by the job, what it reads
and the data copy). Running a job twice costs nothing the second time, so the same
graph runs in-process, on Ray workers sharing a cache directory, or resumes after a crash.
An output recorded in the committed ledger (:mod:`flatness.ledger`) is read from there unless
the job's files are needed (``files=True``: a surrogate's weights for a job still to compute).

Kinds of jobs: :class:`TrainJob` (a model), :class:`TransferJob` (success rate of a surrogate's
checkpoints against a target zoo), :class:`SharpnessJob` (Hessian metrics of checkpoints),
:class:`LandscapeJob` (1-D/2-D slices and interpolations), :class:`LGVJob` (LGV weights).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from flatness import ledger
from flatness.data import images_to_tensor
from flatness.data.derived import derived_source, register_name
from flatness.device import memory_format
from flatness.errors import FlatnessError
from flatness.io import save_torch, write_json
from flatness.minimizers import get_minimizer_class
from flatness.provenance import device_description
from flatness.robust.params import RobustParams
from flatness.scales import ModelSpec, Scale, scale_from_label
from flatness.store import entry_path, get_or_compute, key_of, read_entry
from flatness.study.context import StudyContext, StudySpec
from flatness.study.targets import target_configs
from flatness.training import TrainConfig
from flatness.training.runs import Run, runs_root

#: CIFAR-10's training images (a run with ``train_subset=None`` trains on all of them).
FULL_TRAIN_IMAGES = 50_000


def run_images(config: TrainConfig) -> int:
    """How many images a run trains on: its subset, else all of its dataset."""
    return config.train_subset or training_images(config.dataset)


def training_images(dataset: str) -> int:
    """How many training images a dataset name holds, without loading it: CIFAR-10's, or a
    derived set's size at the scale it names (``d_r@cpu``: cpu's ``robust_dataset_size``, the
    whole training set where that is None)."""
    if "@" not in dataset:
        return FULL_TRAIN_IMAGES
    return DatasetJob(dataset).kind_and_scale()[1].robust_dataset_size or FULL_TRAIN_IMAGES


class Job:
    """Base class of the study's jobs (subclasses are frozen dataclasses)."""

    kind: ClassVar[str] = "job"
    #: Whether jobs reading this one read its files (weights, images), not only its output:
    #: its ledger entry then stands in for it only where no job that must compute reads it.
    artifacts: ClassVar[bool] = False
    #: The revision of the kind's computation: raised when the same fields come to compute
    #: something else, so that no output of the former code is served. It enters the job's
    #: identity only above 1, so raising one kind's renames no other job.
    revision: ClassVar[int] = 1

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        """The jobs whose outputs this one reads (at the study's scale ``spec``)."""
        return ()

    def _identity(self) -> dict[str, Any]:
        """What names the job: its kind, its revision above 1, and its fields."""
        revision = {"revision": self.revision} if self.revision > 1 else {}
        return {"kind": self.kind, **revision, **_plain(self)}

    def key(self) -> str:
        return f"{self.kind}-{key_of(self._identity())}"

    @property
    def label(self) -> str:
        return self.key()

    def work_key(self) -> str:
        """The job without its seeds: jobs that differ only by seed do the same work (cost)."""
        return f"{self.kind}-{key_of(_without_seeds(self._identity()))}"

    def inputs_hash(self, spec: StudySpec) -> str:
        """A hash of this job and, recursively, of every job it reads at ``spec``'s scale.

        :meth:`key` names the job by its own fields only; what the scale resolves at run time
        (the target zoo's recipe, a derived dataset's definition) enters through its
        dependencies, so a retuned scale never serves an output computed from other inputs.
        """
        return key_of({"key": self.key(),
                       "deps": [dep.inputs_hash(spec) for dep in self.deps(spec)]})

    def _output_inputs(self, ctx: StudyContext) -> dict[str, Any]:
        """What the stored output is keyed by: the job's resolved inputs and the data copy."""
        return {"inputs": self.inputs_hash(ctx.spec), "data": ctx.data_source}

    def output_name(self, ctx: StudyContext) -> str:
        """The stored output's name: the job, its resolved inputs and the CIFAR-10 copy."""
        return f"{self.key()}-{key_of(self._output_inputs(ctx))}"

    def output_path(self, ctx: StudyContext) -> Path:
        """Where the cache stores the output."""
        return entry_path(f"jobs/{self.kind}", self.output_name(ctx))

    def local_output(self, ctx: StudyContext) -> dict[str, Any] | None:
        """The output if this machine's cache holds it, else None (computes nothing)."""
        return read_entry(self.output_path(ctx))

    def ledger_output(self, ctx: StudyContext) -> dict[str, Any] | None:
        """The output if the committed ledger records it, else None."""
        return ledger.read(self.kind, self.output_name(ctx))

    def cached_output(self, ctx: StudyContext, files: bool = False) -> dict[str, Any] | None:
        """The output from the cache or, unless its files are needed, the ledger; else None."""
        output = self.local_output(ctx)
        if output is None and not (files and self.artifacts):
            output = self.ledger_output(ctx)
        return output

    def compute_time_s(self, output: dict[str, Any]) -> float:
        """The compute time this job's ``output`` records, in seconds (a training run's is in
        its provenance: :func:`flatness.ledger.job_seconds`)."""
        return ledger.job_seconds(output)

    #: The kind whose rate prices this one's work before any job of its own kind is stored
    #: (its :meth:`work_units` are then counted in that kind's units); None: its own only.
    priced_as: ClassVar[str | None] = None

    def work_units(self, spec: StudySpec) -> float | None:
        """How much work the job does at ``spec``'s scale, in units its kind's compute time
        grows with (a plan prices a job still to run at the rate its kind's cached jobs
        recorded, else at :attr:`priced_as`'s); None: unknown."""
        return None

    def run(self, ctx: StudyContext, files: bool = False) -> dict[str, Any]:
        """The stored output (cache, else ledger unless ``files`` are needed), else computed
        once (another process computing it is waited for)."""
        recorded = self.cached_output(ctx, files)
        if recorded is not None:
            return recorded

        def timed() -> dict[str, Any]:
            start = time.perf_counter()
            output = self.compute(ctx)
            output["wall_time_s"] = round(time.perf_counter() - start, 3)
            output.setdefault("device", device_description(ctx.device))  # who computed it
            return output

        return get_or_compute(self.output_path(ctx), timed,
                              {"job": self._identity(), **self._output_inputs(ctx)})

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        raise NotImplementedError


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` that names a training configuration as its run does
    (:meth:`TrainConfig.to_dict`: a field at its "unset" default, such as ``init_from``, is
    left out, so adding one renames no job)."""
    if isinstance(value, TrainConfig):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def recipe(config: TrainConfig) -> str:
    """How a run trains, for progress lines: ``sam(rho=0.05) 90 ep lr/10 at 30,60``, with its
    adversarial training when it has one (runs that differ only there read apart)."""
    hp = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in config.minimizer_params.items())
    decays = ",".join(map(str, config.decay_epochs))
    schedule = f"lr/{1 / config.decay_factor:g} at {decays}" if decays else "constant lr"
    adv = (f" adv {config.adv_norm} {config.adv_eps:g}x{config.adv_steps}"
           if config.adv_eps > 0 else "")
    precision = " bf16" if config.precision == "bf16" else ""
    start = (f" from {config.parent.minimizer} epoch {config.init_from['epoch']}"
             if config.init_from is not None else "")
    return f"{config.minimizer}({hp}){adv}{start} {config.epochs} ep {schedule}{precision}"


def _without_seeds(value: Any) -> Any:
    """``value`` (nested dicts and lists) without its fields named ``seed``."""
    if isinstance(value, dict):
        return {k: _without_seeds(v) for k, v in value.items() if k != "seed"}
    if isinstance(value, (list, tuple)):
        return [_without_seeds(v) for v in value]
    return value


@dataclass(frozen=True)
class TrainJob(Job):
    """Train a model (surrogate or target); output: its run directory and metrics."""

    config: TrainConfig
    kind: ClassVar[str] = "train"
    artifacts: ClassVar[bool] = True

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        """A derived dataset (``d_r@cpu`` ...) is built by its own job first, and a fine-tuned
        run's parent by its own."""
        parent = () if self.config.parent is None else (TrainJob(self.config.parent),)
        data = () if self.config.dataset == "cifar10" else (DatasetJob(self.config.dataset),)
        return data + parent

    @property
    def label(self) -> str:
        c = self.config
        return f"train {c.dataset}/{c.arch}@{c.width:g} {recipe(c)} seed {c.seed}"

    def run(self, ctx: StudyContext, files: bool = False) -> dict[str, Any]:
        """The finished run's output; with ``files``, the run itself is here (trained, reused,
        or a target restored from the ledger's archive)."""
        if not files:
            recorded = self.cached_output(ctx)
            if recorded is not None:
                return recorded
        return self.output(ctx.train(self.config))

    @staticmethod
    def output(run: Run) -> dict[str, Any]:
        """What a finished run gives the jobs reading it (and the ledger records)."""
        return {"run": str(run.dir), "run_id": run.info["run_id"], "metrics": run.metrics(),
                "provenance": run.provenance}

    def run_dir(self, ctx: StudyContext) -> Path | None:
        """Where the run lives in this cache; None while it cannot be named: a run on a derived
        dataset is named by that dataset's build, unknown until the build is cached."""
        if self.config.dataset == "cifar10":
            source = ctx.data_source
        else:
            built = DatasetJob(self.config.dataset).cached_output(ctx)
            if built is None:
                return None
            source = derived_source(built["kind"], built["artifact_key"], ctx.data_source)
        config = self.config.resolved(ctx.device)
        return runs_root(ctx.spec.runs_out) / config.run_name(source)

    def local_output(self, ctx: StudyContext) -> dict[str, Any] | None:
        """The finished run's output, else None (the run directory is the cache)."""
        run_dir = self.run_dir(ctx)
        if run_dir is None or not Run(run_dir).is_complete:
            return None
        return self.output(Run(run_dir))

    def ledger_output(self, ctx: StudyContext) -> dict[str, Any] | None:
        return None if self.run_dir(ctx) is None else super().ledger_output(ctx)

    def cached_output(self, ctx: StudyContext, files: bool = False) -> dict[str, Any] | None:
        """The finished run's output from here or the ledger; with ``files``, from the ledger
        only where it archives the run itself (a target model, which ``train`` restores)."""
        output = self.local_output(ctx)
        if output is None and not files:
            output = self.ledger_output(ctx)
        elif output is None:
            run_dir = self.run_dir(ctx)
            if run_dir is not None and ledger.is_archived(run_dir.name):
                output = self.ledger_output(ctx)
        return output

    def work_units(self, spec: StudySpec) -> float:
        """Image-epochs still to train x passes per step (SAM 2, GAM 4, PGD steps) x width^2
        (a convolution's cost grows with the square of its channel width)."""
        c = self.config
        start = c.init_from["epoch"] if c.init_from is not None else 0
        passes = get_minimizer_class(c.minimizer).passes * (1 + c.adv_steps)
        images = run_images(c)
        return images * (c.epochs - start) * passes * c.width**2


@dataclass(frozen=True)
class DatasetJob(Job):
    """Build (or reuse) a derived dataset such as ``"d_r@cpu"``; output: its provenance.

    The dataset is built with the *named* scale's parameters and registered under its name,
    which training runs read through ``load_dataset(name)``; its source models train at the
    study's resolved precision, an input of the job (:meth:`inputs_hash`).
    """

    dataset: str
    kind: ClassVar[str] = "dataset"
    artifacts: ClassVar[bool] = True

    def kind_and_scale(self) -> tuple[str, Scale]:
        """``"d_r@cpu"`` -> ``("d_r", the cpu scale)`` (a name without a scale means smoke)."""
        kind, _, label = self.dataset.partition("@")
        return kind, scale_from_label(label or "smoke")

    def key(self) -> str:
        """Keyed by what builds the dataset (the scale's robust parameters), not only its name:
        a retuned scale builds other datasets, a retuned target zoo does not."""
        params = RobustParams.from_scale(self.kind_and_scale()[1]).to_dict()
        return f"{self.kind}-{key_of({'dataset': self.dataset, 'params': params})}"

    def inputs_hash(self, spec: StudySpec) -> str:
        """The job and the precision its source models train at (the study's, resolved)."""
        return key_of({"key": self.key(), "precision": spec.scale.precision})

    @property
    def label(self) -> str:
        return f"dataset {self.dataset}"

    def run(self, ctx: StudyContext, files: bool = False) -> dict[str, Any]:
        """The stored output, its name pointing at its artifact again (another precision may
        have built the name since), so the training runs that read the name read this one; an
        output read from the ledger has no artifact here, and names none."""
        output = super().run(ctx, files)
        if self.local_output(ctx) is not None:
            register_name(self.dataset, ctx.data_source, output["kind"], output["artifact_key"])
        return output

    def compute_time_s(self, output: dict[str, Any]) -> float:
        """The construction alone (the job's own wall time is near zero when
        ``build_dataset`` ran first); its source model's training, which several kinds share,
        is ``output["source_model_wall_s"]``."""
        return float(output.get("construction_s") or 0.0)

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        import numpy as np

        from flatness.robust import build_dataset
        from flatness.robust.params import INVERSION_KINDS

        kind, scale = self.kind_and_scale()
        built = build_dataset(kind, scale, data=ctx.spec.data, device=ctx.device,
                              precision=ctx.scale.precision)
        prov = built.artifact.provenance
        # the source model run build_dataset trained (its metrics only)
        metrics = Run(runs_root() / prov["source_run"]).metrics()
        return {
            "dataset": self.dataset,
            "kind": kind,
            "artifact_key": built.key,
            "images": int(len(built.artifact.labels)),
            "class_counts": np.bincount(built.artifact.labels, minlength=10).tolist(),
            "construction": "representation inversion" if kind in INVERSION_KINDS
            else "targeted adversarial examples, relabelled",
            "source_model_robust": bool(prov.get("source_model_robust")),
            "source_run": prov.get("source_run"),
            "source_model_test_acc": metrics[-1].get("test_acc") if metrics else None,
            "source_model_wall_s": prov.get("source_model_wall_s"),
            "construction_s": prov.get("construction_s"),
            "images_per_s": prov.get("images_per_s"),
            "representation_distance": prov.get("representation_distance"),
            "relabelled_fraction_changed": prov.get("relabelled_fraction_changed"),
            "params": prov.get("params"),
            "built_device": prov.get("device"),
            "precision": prov.get("precision"),
        }


@dataclass(frozen=True)
class LGVJob(Job):
    """LGV weights collected from a trained model with constant high-learning-rate SGD."""

    base: TrainConfig
    epochs: int = 10
    lr_factor: float = 2.0  # LGV: twice the initial learning rate
    n_models: int = 40
    kind: ClassVar[str] = "lgv"
    artifacts: ClassVar[bool] = True
    #: 2: SGD steps at the base run's precision (bf16 autocast where it trained so), channels-last
    #: (1: fp32 always)
    revision: ClassVar[int] = 2
    priced_as: ClassVar[str | None] = "train"

    def work_units(self, spec: StudySpec) -> float:
        """Image-epochs of plain SGD x the base's width^2: a one-pass training run's units, so
        that an LGV job is priced at the training rate before any has run."""
        return run_images(self.base) * self.epochs * self.base.width**2

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        return (TrainJob(self.base),)

    def weights_path(self, ctx: StudyContext):
        return self.output_path(ctx).with_suffix(".pt")

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        from flatness.attacks import lgv_collect
        from flatness.data import DeviceDataset

        run = ctx.train(self.base)
        model = run.load_model(device=ctx.device)
        train_set, _ = ctx.cifar10
        data = DeviceDataset.from_arrays(
            train_set.subset(self.base.train_subset, self.base.subset_seed), ctx.device)
        generator = torch.Generator(device=ctx.device).manual_seed(self.base.seed + 104729)

        def batches():
            return _Sized(data, self.base.batch_size, generator,
                          memory_format(ctx.device, model))

        torch.manual_seed(self.base.seed)
        models = lgv_collect(model, batches, self.epochs, self.lr_factor * self.base.lr,
                             self.n_models, momentum=self.base.momentum,
                             weight_decay=self.base.weight_decay, precision=self.base.precision)
        save_torch(self.weights_path(ctx), [m.state_dict() for m in models])
        return {"weights": str(self.weights_path(ctx)), "n_models": len(models)}

    def load_models(self, ctx: StudyContext) -> list[torch.nn.Module]:
        self.run(ctx, files=True)
        states = torch.load(self.weights_path(ctx), map_location="cpu", weights_only=True)
        base = ctx.train(self.base)
        models = []
        for state in states:
            model = base.load_model(device=ctx.device)
            model.load_state_dict(state)
            models.append(model.eval())
        return models


class _Sized:
    """One epoch of augmented device batches with a length (what ``lgv_collect`` expects)."""

    def __init__(self, data: Any, batch_size: int, generator: torch.Generator,
                 layout: torch.memory_format) -> None:
        self.data, self.batch_size, self.generator, self.layout = (
            data, batch_size, generator, layout)

    def __len__(self) -> int:
        return self.data.num_batches(self.batch_size)

    def __iter__(self):
        return iter(self.data.batches(self.batch_size, shuffle=True, augment=True,
                                      generator=self.generator, memory_format=self.layout))


@dataclass(frozen=True)
class AttackSpec:
    """An attack: norm, budget, steps, techniques (``step_size=0``: eps / min(10, steps))."""

    eps: float
    steps: int
    norm: str = "linf"
    step_size: float = 0.0
    techniques: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise FlatnessError(f"attack_steps must be an integer >= 1, got {self.steps!r}")

    @property
    def resolved_step_size(self) -> float:
        return self.step_size or self.eps / min(10, self.steps)


@dataclass(frozen=True)
class TransferJob(Job):
    """Success rates of a surrogate's checkpoints (or its LGV ensemble) against a target zoo.

    ``epochs=()`` means the final epoch. Targets are the scale's zoo trained on
    ``target_dataset`` (or ``target_specs``); the attacked images are the fixed selection
    that every target classifies correctly.
    """

    surrogate: TrainConfig
    attack: AttackSpec
    epochs: tuple[int, ...] = ()
    target_dataset: str = "cifar10"
    target_specs: tuple[ModelSpec, ...] | None = None
    lgv: LGVJob | None = None
    kind: ClassVar[str] = "transfer"

    @property
    def label(self) -> str:
        tech = "+".join(self.attack.techniques) or "plain"
        return (f"transfer {self.surrogate.dataset}/{self.surrogate.arch} "
                f"{recipe(self.surrogate)} s{self.surrogate.seed} "
                f"{tech}{' lgv' if self.lgv else ''} -> {self.target_dataset}")

    def work_units(self, spec: StudySpec) -> float:
        """Attack steps x checkpoints attacked x the scale's attacked images x the surrogate's
        width^2 (an image's step: a forward and a backward pass)."""
        return (self.attack.steps * len(self.epochs or (0,)) * spec.scale.n_attack_images
                * self.surrogate.width**2)

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        targets = target_configs(spec.scale, self.target_dataset, self.target_specs)
        return (TrainJob(self.surrogate), *(TrainJob(c) for c in targets),
                *(self.lgv,) * (self.lgv is not None))

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        from flatness.attacks import attack, parse_techniques, success_rates

        names, targets = ctx.targets(self.target_dataset, self.target_specs)
        x, y = ctx.attack_set(self.target_dataset, self.target_specs)
        run = ctx.train(self.surrogate)
        epochs = self.epochs or (self.surrogate.epochs,)
        spec = self.attack
        partial = self.output_path(ctx).with_suffix(".partial.json")
        done = {r["epoch"]: r for r in json.loads(partial.read_text())} if partial.is_file() else {}
        rows = []
        for epoch in epochs:
            if epoch in done:  # resumed: this checkpoint was attacked before an interruption
                rows.append(done[epoch])
                continue
            if self.lgv is not None:
                surrogates = self.lgv.load_models(ctx)
                ensemble = "cycle"
            else:
                surrogates = [run.load_model(epoch, ctx.device)]
                ensemble = "logits"
            generator = torch.Generator(device=ctx.device).manual_seed(self.surrogate.seed)
            x_adv = attack(surrogates, x.to(ctx.device), y.to(ctx.device), eps=spec.eps,
                           steps=spec.steps, step_size=spec.resolved_step_size, norm=spec.norm,
                           techniques=parse_techniques(list(spec.techniques)), ensemble=ensemble,
                           generator=generator, amp=ctx.amp)
            rates = success_rates(targets, x_adv, y, x_clean=x.to(x_adv.device), amp=ctx.amp)
            rows.append({"epoch": epoch, "success": rates.tolist(),
                         "mean": float(rates.nanmean())})
            write_json(partial, rows)
        partial.unlink(missing_ok=True)
        metrics = {m["epoch"]: m for m in run.metrics()}
        return {
            "targets": names,
            "n_images": len(y),
            "run": run.dir.name,
            "epochs": [r["epoch"] for r in rows],
            "success": [r["success"] for r in rows],
            "mean": [r["mean"] for r in rows],
            "test_acc": [metrics.get(e, {}).get("test_acc") for e in epochs],
            "train_loss": [metrics.get(e, {}).get("train_loss") for e in epochs],
        }


@dataclass(frozen=True)
class RobustnessJob(Job):
    """Clean and white-box accuracy of a model's final checkpoint under L2 PGD (Madry et al.).

    Ilyas et al.'s check of ``D_R``: a model trained on it should resist small L2 attacks
    better than one trained on as many original images. ``n_images`` CIFAR-10 test images
    (a seeded selection, the same for every model), PGD with a random start and step
    ``2.5 eps / steps`` at each budget in ``eps``.
    """

    model: TrainConfig
    eps: tuple[float, ...] = (0.25, 0.5)
    steps: int = 20
    n_images: int = 1000
    kind: ClassVar[str] = "robustness"
    priced_as: ClassVar[str | None] = "transfer"

    def work_units(self, spec: StudySpec) -> float:
        """PGD steps x budgets x images x the model's width^2: attacked image-steps, a transfer
        job's units, so that the first robustness job is priced at the attacks' rate."""
        return self.steps * len(self.eps) * self.n_images * self.model.width**2

    @property
    def label(self) -> str:
        return f"robustness {self.model.dataset}/{self.model.arch} seed {self.model.seed}"

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        return (TrainJob(self.model),)

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        from flatness.attacks import attack, predict

        _, test = ctx.cifar10
        test = test.subset(self.n_images, 0)
        x = images_to_tensor(test.images, ctx.device)
        y = torch.from_numpy(test.labels)
        model = ctx.train(self.model).load_model(device=ctx.device)

        def accuracy(images: torch.Tensor) -> float:
            return int((predict(model, images, amp=ctx.amp)[0] == y).sum()) / len(y)

        robust = []
        for eps in self.eps:
            generator = torch.Generator(device=ctx.device).manual_seed(0)
            x_adv = attack(model, x, y.to(ctx.device), eps=eps, steps=self.steps,
                           step_size=2.5 * eps / self.steps, norm="l2", random_start=True,
                           generator=generator, amp=ctx.amp)
            robust.append(accuracy(x_adv))
        return {"n_images": len(y), "eps": list(self.eps), "clean": accuracy(x),
                "robust": robust}


@dataclass(frozen=True)
class SharpnessJob(Job):
    """Largest Hessian eigenvalue and trace of a surrogate's checkpoints.

    ``trace_samples`` caps the Hutchinson probes (a fixed count; ``None``: the library's
    adaptive rule, up to 100 probes at 1 % relative error) and ``max_iter`` the Lanczos steps:
    the budget knobs of small scales. ``trace_method`` is the estimator
    (:func:`flatness.sharpness.hessian_metrics`): part of the job, since it changes the numbers.
    """

    surrogate: TrainConfig
    epochs: tuple[int, ...] = ()
    engine: str = "fast"
    n_images: int = 1000
    batch_size: int = 100
    trace_samples: int | None = None
    max_iter: int | None = None
    trace_method: str = "hutchinson"
    kind: ClassVar[str] = "sharpness"

    def __post_init__(self) -> None:
        from flatness.sharpness.metrics import TRACE_METHODS

        if self.trace_method not in TRACE_METHODS:
            raise FlatnessError(f"unknown trace_method {self.trace_method!r}; use one of "
                                f"{', '.join(TRACE_METHODS)}")

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        return (TrainJob(self.surrogate),)

    def work_units(self, spec: StudySpec) -> float:
        """Images x checkpoints x Hessian-vector products (Lanczos and trace probes) x
        width^2."""
        products = (self.max_iter or 20) + (self.trace_samples or 10)
        return (self.n_images * len(self.epochs or (0,)) * products
                * self.surrogate.width**2)

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        from flatness.sharpness import sharpness_over_training

        budget: dict[str, Any] = {}
        if self.trace_samples is not None:
            budget.update(trace_samples=self.trace_samples, trace_tol=None,
                          trace_min_samples=min(10, self.trace_samples))
        if self.max_iter is not None:
            budget["max_iter"] = self.max_iter
        budget["trace_method"] = self.trace_method
        run = ctx.train(self.surrogate)
        epochs = list(self.epochs or (self.surrogate.epochs,))
        result = sharpness_over_training(run, epochs, engine=self.engine, n_images=self.n_images,
                                         batch_size=self.batch_size, device=ctx.device,
                                         data=ctx.spec.data, scale=ctx.scale.name, **budget)
        data = result.data
        return {key: data[key] for key in ("epochs", "top_eigenvalue", "trace", "trace_stderr",
                                           "lr")}


@dataclass(frozen=True)
class LandscapeJob(Job):
    """A loss landscape: ``kind`` "1d"/"2d" around one checkpoint, or "interpolation" between
    two. ``span`` is the half-width of the grid in units of the (filter-normalised) direction.
    """

    model: TrainConfig
    epoch: int | None = None
    shape: str = "1d"
    other: TrainConfig | None = None
    other_epoch: int | None = None
    points: int = 21
    span: float = 1.0
    n_images: int = 1000
    direction_seed: int = 0
    kind: ClassVar[str] = "landscape"

    def deps(self, spec: StudySpec) -> tuple[Job, ...]:
        return tuple(TrainJob(c) for c in (self.model, self.other) if c is not None)

    def compute(self, ctx: StudyContext) -> dict[str, Any]:
        import numpy as np

        from flatness.sharpness import (
            interpolate,
            landscape_1d,
            landscape_2d,
            random_direction,
        )

        run = ctx.train(self.model)
        model = run.load_model(self.epoch, ctx.device)
        train_set, test_set = ctx.cifar10
        subset = train_set.subset(self.model.train_subset, self.model.subset_seed)
        subset = subset.subset(min(self.n_images, len(subset)), 0)
        test = test_set.subset(min(self.n_images, len(test_set)), 0)
        images = images_to_tensor(subset.images)
        test_images = images_to_tensor(test.images)
        common = dict(test_images=test_images, test_labels=torch.from_numpy(test.labels),
                      device=ctx.device, scale=ctx.scale.name)
        labels = torch.from_numpy(subset.labels)
        grid = np.linspace(-self.span, self.span, self.points).tolist()
        if self.shape == "interpolation":
            other = ctx.train(self.other or self.model).load_model(self.other_epoch, ctx.device)
            # alpha in [0, 1] only: beyond, BatchNorm variances would be extrapolated (< 0)
            alphas = np.linspace(0.0, 1.0, self.points).tolist()
            result = interpolate(model, other, alphas, images, labels, **common)
        elif self.shape == "1d":
            direction = random_direction(model, self.direction_seed)
            result = landscape_1d(model, direction, grid, images, labels, **common)
        elif self.shape == "2d":
            d1 = random_direction(model, self.direction_seed)
            d2 = random_direction(model, self.direction_seed + 1)
            result = landscape_2d(model, d1, d2, grid, grid, images, labels, **common)
        else:
            raise ValueError(f"unknown landscape shape {self.shape!r}")
        return dict(result.data)
