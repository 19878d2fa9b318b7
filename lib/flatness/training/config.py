"""A training run's full configuration; its store key identifies the run.

Everything that changes the trained weights is a field here (architecture, data subset,
recipe, minimizer and its hyper-parameters, seed, adversarial-training settings). Execution
options that do not change the result (``torch.compile``, progress bars, output folder) are
arguments of :func:`flatness.training.train` instead, so asking again for the same
configuration reuses the finished run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flatness.errors import FlatnessError
from flatness.minimizers import MINIMIZERS
from flatness.precision import DEFAULT_PRECISION, precision_problem, resolve_precision
from flatness.store import key_of

if TYPE_CHECKING:  # a scale is read by its fields: training does not depend on the study design
    from flatness.scales import ModelSpec, Scale


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how (defaults: the paper's CIFAR-10 surrogate recipe)."""

    arch: str = "resnet50"
    width: float = 1.0
    depth: int | None = None
    dataset: str = "cifar10"
    train_subset: int | None = None  # class-balanced subset of the training set (None: all)
    subset_seed: int = 0  # the subset is shared across training seeds
    eval_subset: int | None = None  # test images scored after every epoch (None: all)
    epochs: int = 150
    lr: float = 0.05
    decay_epochs: tuple[int, ...] = (50, 100)  # lr *= decay_factor after each of these epochs
    decay_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    batch_size: int = 128
    augment: bool = True
    minimizer: str = "sgd"
    minimizer_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    checkpoint_epochs: tuple[int, ...] = ()  # model weights kept for these epochs (and the last)
    # epochs at which the whole training state (weights, optimizer, data-order generator) is
    # also kept, so that a branch with ``resume=True`` continues the run exactly from there
    state_epochs: tuple[int, ...] = ()
    # adversarial training (robust models of Ilyas et al., slight adversarial training SAT)
    adv_norm: str = "l2"
    adv_eps: float = 0.0
    adv_steps: int = 0
    adv_step_size: float = 0.0
    # autocast: auto (bf16 on CUDA and native-bf16 CPUs; resolved before the run is named),
    # bf16, fp32
    precision: str = DEFAULT_PRECISION
    # fine-tuning: start from another run's checkpoint instead of a fresh initialisation,
    # ``{"config": the parent's TrainConfig as a dict, "epoch": E}``; epochs E+1.. follow this
    # configuration's schedule (late-phase SAM, Zhou et al. 2025). With ``"resume": True`` the
    # run continues the parent's saved training state at E (its ``state_epochs``): the parent's
    # run with another schedule after E, without retraining epochs 1..E (chapter 2's single
    # decays). Build it with :meth:`branch`.
    init_from: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.lr <= 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if any(e < 0 for e in self.decay_epochs):
            problems.append(f"decay epochs must be >= 0 (got {self.decay_epochs})")
        if any(e < 1 or e > self.epochs for e in self.checkpoint_epochs):
            problems.append(f"checkpoint epochs must lie in 1..{self.epochs}")
        if any(e < 1 or e >= self.epochs for e in self.state_epochs):
            problems.append(f"state epochs must lie in 1..{self.epochs - 1}")
        if self.adv_eps < 0 or self.adv_steps < 0:
            problems.append("adversarial-training eps and steps must be >= 0")
        if self.adv_norm not in {"l2", "linf"}:
            problems.append(f"adv_norm must be 'l2' or 'linf' (got {self.adv_norm!r})")
        if problem := precision_problem(self.precision):
            problems.append(problem)
        if self.init_from is not None:
            problems.extend(self._parent_problems())
        if problems:
            raise FlatnessError("invalid training configuration: " + "; ".join(problems))
        # normalise containers so that equal configs hash equally
        object.__setattr__(self, "decay_epochs", tuple(sorted(int(e) for e in self.decay_epochs)))
        object.__setattr__(self, "checkpoint_epochs",
                           tuple(sorted({int(e) for e in self.checkpoint_epochs})))
        object.__setattr__(self, "state_epochs", tuple(sorted({int(e) for e in self.state_epochs})))
        object.__setattr__(self, "minimizer_params", dict(sorted(self.minimizer_params.items())))
        if self.init_from is not None:
            resume = {"resume": True} if self.resumes else {}
            object.__setattr__(self, "init_from", {"config": self.parent.to_dict(),
                                                   "epoch": int(self.init_from["epoch"]),
                                                   **resume})

    def _parent_problems(self) -> list[str]:
        """Why ``init_from`` cannot seed this run: the parent must be the same network on the
        same data, with a checkpoint at its epoch, before this run's first epoch."""
        spec = self.init_from
        if (not isinstance(spec, dict) or not {"config", "epoch"} <= set(spec)
                or not set(spec) <= {"config", "epoch", "resume"}
                or not isinstance(spec["config"], dict) or not isinstance(spec["epoch"], int)
                or isinstance(spec["epoch"], bool)
                or not isinstance(spec.get("resume", False), bool)):
            return [f"init_from must be {{'config': dict, 'epoch': int[, 'resume': bool]}} "
                    f"(got {spec!r})"]
        try:
            parent = TrainConfig.from_dict(spec["config"])
        except (FlatnessError, TypeError) as exc:
            return [f"init_from's configuration is invalid ({exc})"]
        epoch = spec["epoch"]
        problems = []
        if not 1 <= epoch < self.epochs:
            problems.append(f"init_from's epoch must lie in 1..{self.epochs - 1} (got {epoch})")
        if epoch not in parent.checkpoint_epochs and epoch != parent.epochs:
            problems.append(f"the parent run keeps no checkpoint at epoch {epoch}")
        if spec.get("resume"):  # compares every field, these among them
            return problems + self._resume_problems(parent, epoch)
        same = ("arch", "width", "depth", "dataset", "train_subset", "subset_seed")
        if differ := [k for k in same if getattr(parent, k) != getattr(self, k)]:
            problems.append(f"init_from's parent differs in {', '.join(differ)}: fine-tuning "
                            "continues the same network on the same data")
        if any(e <= epoch for e in self.checkpoint_epochs):
            problems.append(f"checkpoint epochs must come after init_from's epoch {epoch}")
        return problems

    def _resume_problems(self, parent: TrainConfig, epoch: int) -> list[str]:
        """Why this run cannot continue ``parent``'s training state at ``epoch``: the parent
        must keep that state, and the two must be the same run up to it (every field but the
        schedule after ``epoch`` and the epochs whose files are kept)."""
        problems = []
        if epoch not in parent.state_epochs:
            problems.append(f"the parent run keeps no training state at epoch {epoch} "
                            "(its state_epochs)")
        kept = ("decay_epochs", "checkpoint_epochs", "state_epochs", "init_from")
        mine = {k: v for k, v in dataclasses.asdict(self).items() if k not in kept}
        theirs = {k: v for k, v in dataclasses.asdict(parent).items() if k not in kept}
        if differ := sorted(k for k in mine if mine[k] != theirs[k]):
            problems.append(f"a resumed run differs from its parent only in its schedule after "
                            f"epoch {epoch}, not in {', '.join(differ)}")
        if ([d for d in self.decay_epochs if d < epoch]
                != [d for d in parent.decay_epochs if d < epoch]):
            problems.append(f"a resumed run keeps its parent's decays before epoch {epoch}")
        if missing := [e for e in self.checkpoint_epochs
                       if e <= epoch and e not in parent.checkpoint_epochs]:
            problems.append(f"the parent keeps no checkpoint at epoch(s) {missing}")
        return problems

    @property
    def resumes(self) -> bool:
        """Whether this run continues its parent's training state (``init_from``'s resume)."""
        return bool(self.init_from and self.init_from.get("resume"))

    @property
    def parent(self) -> TrainConfig | None:
        """The run whose checkpoint this one starts from (None: a fresh initialisation)."""
        return None if self.init_from is None else TrainConfig.from_dict(self.init_from["config"])

    def branch(self, epoch: int, resume: bool = False, **changes: Any) -> TrainConfig:
        """A run that starts from this one's checkpoint at ``epoch`` and trains on to the end of
        the same schedule with ``changes`` (e.g. ``minimizer="sam"``), keeping this run's later
        checkpoints. ``resume``: continue this run's training state at ``epoch`` (one of its
        ``state_epochs``) with another schedule after it, keeping all its checkpoints (those up
        to ``epoch`` copied from this run): the run a fresh start with that schedule would
        train, without epochs 1..``epoch``."""
        changes.setdefault("checkpoint_epochs", tuple(
            e for e in self.checkpoint_epochs if resume or e > epoch))
        changes.setdefault("state_epochs", ())
        spec = {"config": self.to_dict(), "epoch": epoch, **({"resume": True} if resume else {})}
        return dataclasses.replace(self, init_from=spec, **changes)

    # -- identity ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field (the run's identity, precision included); ``init_from`` only when set, so
        that runs from a fresh initialisation keep the keys they had before it existed; the
        minimizer's code revision only above 1, so that only a changed minimizer's runs get new
        keys (see :attr:`flatness.minimizers.base.Minimizer.revision`)."""
        data = dataclasses.asdict(self)
        if data["init_from"] is None:
            del data["init_from"]
        if not data["state_epochs"]:  # runs that keep no state keep the keys they had
            del data["state_epochs"]
        if (revision := _minimizer_revision(self.minimizer)) > 1:
            data["minimizer_revision"] = revision
        return data

    def resolved(self, device: Any) -> TrainConfig:
        """This configuration with its precision resolved to what runs on ``device``."""
        precision = resolve_precision(self.precision, device)
        changes: dict[str, Any] = {}
        if precision != self.precision:
            changes["precision"] = precision
        parent = self.parent
        if parent is not None and (resolved := parent.resolved(device)) != parent:
            changes["init_from"] = {**self.init_from, "config": resolved.to_dict()}
        return dataclasses.replace(self, **changes) if changes else self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)} | {"minimizer_revision"}
        unknown = set(data) - known
        if unknown:
            raise FlatnessError(
                f"training configuration has unknown fields {sorted(unknown)}: it was written "
                "by another version of flatness; delete the run or use that version"
            )
        values = dict(data)
        revision = values.pop("minimizer_revision", 1)
        minimizer = values.get("minimizer", cls.minimizer)
        if revision != (current := _minimizer_revision(minimizer)):
            raise FlatnessError(
                f"this run was trained by revision {revision} of minimizer {minimizer!r}'s code, "
                f"which this version of flatness replaced by revision {current}: train it again")
        for key in ("decay_epochs", "checkpoint_epochs", "state_epochs"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def run_id(self, data_source: str) -> str:
        """The store key of the configuration and the data copy it trains on; only a resolved
        precision names a run (``auto`` would name fp32 and bf16 weights alike)."""
        if self.precision == DEFAULT_PRECISION:
            raise FlatnessError("a run is named by its resolved precision: call "
                                "config.resolved(device) before naming it")
        return key_of({"config": self.to_dict(), "data_source": data_source})

    def run_name(self, data_source: str) -> str:
        """Directory name: readable prefix plus the configuration hash."""
        tag = self.minimizer
        if "rho" in self.minimizer_params:
            tag += f"{self.minimizer_params['rho']:g}"
        if self.adv_eps > 0:
            tag += f"-adv{self.adv_norm}{self.adv_eps:.3g}"
        if self.init_from is not None:
            tag += f"-{'resume' if self.resumes else 'from'}{self.init_from['epoch']}"
        return f"{self.dataset}-{self.arch}-{tag}-s{self.seed}-{self.run_id(data_source)}"

    def lr_at(self, epoch: int) -> float:
        """Learning rate used during ``epoch`` (1-based): decays apply after their epoch."""
        n_decays = sum(epoch > milestone for milestone in self.decay_epochs)
        return self.lr * self.decay_factor**n_decays

    # -- construction from a scale ----------------------------------------------------------
    @classmethod
    def from_scale(
        cls,
        scale: Scale,
        spec: ModelSpec | None = None,
        *,
        seed: int = 0,
        target: bool = False,
        **overrides: Any,
    ) -> TrainConfig:
        """The scale's surrogate recipe (or its target recipe with ``target=True``)."""
        spec = spec or scale.surrogate
        base = dict(
            arch=spec.arch,
            width=spec.width,
            depth=spec.depth,
            train_subset=scale.target_train_subset if target else scale.train_subset,
            eval_subset=scale.eval_subset,
            epochs=scale.target_epochs if target else scale.epochs,
            lr=scale.lr,
            decay_epochs=scale.target_decay_epochs if target else scale.decay_epochs,
            momentum=scale.momentum,
            weight_decay=scale.weight_decay,
            batch_size=scale.batch_size,
            seed=seed,
            precision=scale.precision,
        )
        if not target:
            every = max(1, scale.checkpoint_every)
            base["checkpoint_epochs"] = tuple(range(every, scale.epochs + 1, every))
        base.update(overrides)
        return cls(**base)


def _minimizer_revision(name: str) -> int:
    """The code revision of minimizer ``name`` (1 for a name we do not know: training rejects
    it with the list of names before any work starts)."""
    minimizer = MINIMIZERS.get(name)
    return 1 if minimizer is None else minimizer.revision
