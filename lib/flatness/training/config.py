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
    # configuration's schedule (late-phase SAM, Zhou et al. 2025). Build it with :meth:`branch`.
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
        object.__setattr__(self, "minimizer_params", dict(sorted(self.minimizer_params.items())))
        if self.init_from is not None:
            object.__setattr__(self, "init_from", {"config": self.parent.to_dict(),
                                                   "epoch": int(self.init_from["epoch"])})

    def _parent_problems(self) -> list[str]:
        """Why ``init_from`` cannot seed this run: the parent must be the same network on the
        same data, with a checkpoint at its epoch, before this run's first epoch."""
        spec = self.init_from
        if (not isinstance(spec, dict) or set(spec) != {"config", "epoch"}
                or not isinstance(spec["config"], dict) or not isinstance(spec["epoch"], int)
                or isinstance(spec["epoch"], bool)):
            return [f"init_from must be {{'config': dict, 'epoch': int}} (got {spec!r})"]
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
        same = ("arch", "width", "depth", "dataset", "train_subset", "subset_seed")
        if differ := [k for k in same if getattr(parent, k) != getattr(self, k)]:
            problems.append(f"init_from's parent differs in {', '.join(differ)}: fine-tuning "
                            "continues the same network on the same data")
        if any(e <= epoch for e in self.checkpoint_epochs):
            problems.append(f"checkpoint epochs must come after init_from's epoch {epoch}")
        return problems

    @property
    def parent(self) -> TrainConfig | None:
        """The run whose checkpoint this one starts from (None: a fresh initialisation)."""
        return None if self.init_from is None else TrainConfig.from_dict(self.init_from["config"])

    def branch(self, epoch: int, **changes: Any) -> TrainConfig:
        """A run that starts from this one's checkpoint at ``epoch`` and trains on to the end of
        the same schedule with ``changes`` (e.g. ``minimizer="sam"``), keeping this run's later
        checkpoints."""
        changes.setdefault("checkpoint_epochs",
                           tuple(e for e in self.checkpoint_epochs if e > epoch))
        return dataclasses.replace(self, init_from={"config": self.to_dict(), "epoch": epoch},
                                   **changes)

    # -- identity ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field (the run's identity, precision included); ``init_from`` only when set, so
        that runs from a fresh initialisation keep the keys they had before it existed."""
        data = dataclasses.asdict(self)
        if data["init_from"] is None:
            del data["init_from"]
        return data

    def resolved(self, device: Any) -> TrainConfig:
        """This configuration with its precision resolved to what runs on ``device``."""
        precision = resolve_precision(self.precision, device)
        changes: dict[str, Any] = {}
        if precision != self.precision:
            changes["precision"] = precision
        parent = self.parent
        if parent is not None and (resolved := parent.resolved(device)) != parent:
            changes["init_from"] = {"config": resolved.to_dict(), "epoch": self.init_from["epoch"]}
        return dataclasses.replace(self, **changes) if changes else self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise FlatnessError(
                f"training configuration has unknown fields {sorted(unknown)}: it was written "
                "by another version of flatness; delete the run or use that version"
            )
        values = dict(data)
        for key in ("decay_epochs", "checkpoint_epochs"):
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
            tag += f"-from{self.init_from['epoch']}"
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
