"""Named study designs (``smoke``, ``cpu``, ``gpu``, ``paper``), defined once, as data.

A scale holds every setting that changes with the size of the study: the data, the training
recipe, the targets and the attack, and one section per chapter for what only that chapter
uses (:class:`HessianDesign`, :class:`LandscapeDesign`, :class:`MinimizerDesign`, ...). The
chapters read their defaults from these fields and never from a scale's name, so a new scale
(``get_scale("cpu").replace(...)`` or ``Scale(...)``) gets exactly what its fields say. Any
field can be overridden, nested ones by a dotted name: ``get_scale("cpu", epochs=40)``, or on
the command line ``--set epochs=40 --set minimizers.rhos.sam=0.05,0.3`` (see
:mod:`flatness.fields`). The ``paper`` scale is the protocol of ``shared/PAPER.md``; the others
shrink it while keeping its shape (two learning-rate decays at 1/3 and 2/3 of training, several
targets, BIM L-inf).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from flatness.errors import FlatnessError
from flatness.fields import FrozenDict, format_value, leaves, override, parse_number
from flatness.precision import DEFAULT_PRECISION, check_precision

__all__ = ["SCALES", "ComplementarityDesign", "HessianDesign", "LandscapeDesign",
           "MinimizerDesign", "ModelSpec", "RobustFeaturesDesign", "Scale", "get_scale",
           "parse_model_spec", "parse_number", "parse_overrides", "scale_from_label",
           "scale_label"]


@dataclass(frozen=True)
class ModelSpec:
    """An architecture with its size knobs (``width`` multiplies the published channel counts)."""

    arch: str
    width: float = 1.0
    depth: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_text(cls, text: str) -> ModelSpec:
        """Parse ``resnet18``, ``resnet18@0.25`` (width) or ``resnet18@0.25:2`` (and depth)."""
        arch, _, rest = text.strip().partition("@")
        width_text, _, depth_text = rest.partition(":")
        return cls(arch=arch, width=float(width_text) if width_text else 1.0,
                   depth=int(depth_text) if depth_text else None)

    def to_text(self) -> str:
        """The text :meth:`from_text` reads back."""
        depth = "" if self.depth is None else f":{self.depth}"
        return f"{self.arch}@{self.width:g}{depth}"


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``resnet18``, ``resnet18@0.25`` (width) or ``resnet18@0.25:2`` (width, depth)."""
    return ModelSpec.from_text(text)


@dataclass(frozen=True)
class RobustFeaturesDesign:
    """Chapter 1: which checkpoints the Fig. 3 analogue attacks."""

    #: every k-th checkpoint, counted back from the last one (1: all; attacking every
    #: checkpoint towards four targets is the chapter's largest cost)
    fig3_every: int


@dataclass(frozen=True)
class HessianDesign:
    """Hessian metrics of the SGD surrogate over training (chapter 3), with the same settings
    at the final epoch of every minimizer (chapter 4), so SGD's are computed once for both."""

    every: int  # every k-th checkpoint, plus each decay window and the final epoch
    images: int  # training images the Hessian is averaged over
    batch: int
    #: Hutchinson probes of the trace and Lanczos steps of the top eigenvalue; None: the
    #: library's adaptive rule (up to 100 probes, 1 % tolerance: minutes per checkpoint on CPU)
    trace_samples: int | None
    max_iter: int | None
    #: the trace estimator: "deflated" (exact on the Lanczos basis, Hutchinson on the rest),
    #: "hutchinson" or "hutch++" (flatness.sharpness.hessian_metrics)
    trace_method: str = "deflated"


@dataclass(frozen=True)
class LandscapeDesign:
    """Chapter 3's loss landscapes (1-D and 2-D slices, interpolations)."""

    grid: int  # points per axis of the 1-D slices (and of the interpolations, about)
    grid_2d: int  # points per axis of the 2-D slices (grid_2d ** 2 evaluations)
    images: int  # training images each point is evaluated on
    #: random directions along which the flatness claim's models are sliced in 1-D: the
    #: claim averages their curvatures, since one direction's (Li et al. 2018 draw one) is a
    #: noisy estimate of the basin's
    directions: int = 5


@dataclass(frozen=True)
class MinimizerDesign:
    """Chapter 4: the minimizers trained, their rho grids and, where fewer are affordable,
    their seeds (a minimizer not in ``seeds`` trains the scale's)."""

    names: tuple[str, ...]
    #: rho grid per minimizer (one without a grid trains its default rho); l-SAM is SAM with
    #: the largest rho of its grid
    rhos: dict[str, tuple[float, ...]]
    seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: hyper-parameters other than rho, per minimizer, where its defaults do not train in this
    #: regime (measured; the scale says why beside the value); every other one keeps its default
    hyperparameters: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # read-only mappings: a scale, named ones included, never changes in place
        object.__setattr__(self, "rhos", FrozenDict(self.rhos))
        object.__setattr__(self, "seeds", FrozenDict(self.seeds))
        object.__setattr__(self, "hyperparameters", FrozenDict(
            {name: FrozenDict(values) for name, values in self.hyperparameters.items()}))


@dataclass(frozen=True)
class ComplementarityDesign:
    """Chapter 5: the attack-time techniques crossed with the surrogates, slight adversarial
    training and LGV (Gubri et al. 2022: 10 epochs, 4 models per epoch)."""

    techniques: tuple[str, ...]
    sat_steps: int  # PGD steps of slight adversarial training
    lgv_epochs: int
    lgv_models: int


@dataclass(frozen=True)
class RegimeDesign:
    """The regime map: cells of (training images, epochs, surrogate width) each trained with
    SGD and SAM over a rho grid (0 is SGD), for several seeds."""

    cells: tuple[tuple[float, ...], ...]  # (train_subset, epochs, width) per cell
    rhos: tuple[float, ...]
    seeds: tuple[int, ...]
    curve_points: int  # SGD checkpoints attacked for early stopping, about
    sharpness_images: int  # training images of the top eigenvalue
    #: late-phase SAM (Zhou et al. 2025): SGD's checkpoint at the last decay fine-tuned with
    #: SAM at these rhos to the end of the schedule; () for no such column
    late_rhos: tuple[float, ...] = ()


@dataclass(frozen=True)
class Scale:
    """The whole study design at one size: every setting a chapter's jobs depend on."""

    name: str
    # data
    train_subset: int | None  # number of training images (class-balanced, seeded); None = all
    eval_subset: int | None  # test images used for natural accuracy each epoch; None = all
    # surrogate training (the protocol's SGD recipe)
    surrogate: ModelSpec
    epochs: int
    decay_epochs: tuple[int, ...]
    lr: float
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-4
    checkpoint_every: int = 1  # surrogate checkpoints kept for transfer/sharpness curves
    # targets
    targets: tuple[ModelSpec, ...] = ()
    target_epochs: int = 0
    target_decay_epochs: tuple[int, ...] = ()
    target_train_subset: int | None = None
    # attack
    n_attack_images: int = 2000
    eps: float = 4 / 255
    attack_steps: int = 50
    seeds: tuple[int, ...] = (0, 1, 2)
    # robust / non-robust datasets (Ilyas et al. 2019)
    robust_dataset_size: int | None = None  # None = the whole training set
    robust_model_epochs: int = 0
    robust_iterations: int = 1000
    robust_inversion_step_size: float = 0.1  # L2-normalised steps of the representation inversion
    robust_adv_steps: int = 7  # PGD steps of the robust model's adversarial training
    robust_attack_steps: int = 100  # targeted PGD steps building D_rand / D_det
    # training precision (flatness.precision): auto = bf16 autocast on CUDA, fp32 on CPU
    precision: str = DEFAULT_PRECISION
    # the chapters' designs: no defaults, so that a new scale states each of them
    #: l-SAM's large SAM radius, shared by chapters 3, 4 and 5 (the same cached runs)
    lsam_rho: float = field(kw_only=True)
    robust_features: RobustFeaturesDesign = field(kw_only=True)
    hessian: HessianDesign = field(kw_only=True)
    landscape: LandscapeDesign = field(kw_only=True)
    minimizers: MinimizerDesign = field(kw_only=True)
    complementarity: ComplementarityDesign = field(kw_only=True)
    regimes: RegimeDesign = field(kw_only=True)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        problems = []
        if not 0 < self.eps <= 1:
            problems.append(f"eps must lie in (0, 1] (got {self.eps:g})")
        for name in ("epochs", "batch_size", "n_attack_images", "attack_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.lr <= 0:
            problems.append(f"lr must be > 0 (got {self.lr:g})")
        if any(seed < 0 for seed in self.seeds):
            problems.append(f"seeds must be integers >= 0 (got {self.seeds})")
        if problems:
            raise FlatnessError(f"scale {self.name!r}: " + "; ".join(problems))

    def replace(self, **overrides: Any) -> Scale:
        """A copy with some fields changed, nested ones by dotted name
        (``minimizers.rhos.sam``), each value read as its field's type."""
        scale = self
        for name, value in overrides.items():
            scale = override(scale, name, value, what="scale field")
        return scale

    def to_dict(self) -> dict[str, Any]:
        """The fields (precision included: an identity names what runs)."""
        return dataclasses.asdict(self)


# Cheap on CPU (measured: one forward-backward of a 128-batch costs 0.14-0.28 s at width 0.25
# for these, 1.4-2.6 s for DenseNet-121, ResNeXt-29, WRN-28-10 and GoogLeNet); one target
# shares the surrogate's architecture (intra-architecture), three do not.
_CPU_TARGETS = (
    ModelSpec("vgg19_bn", 0.25),
    ModelSpec("preactresnet18", 0.25),
    ModelSpec("senet18", 0.25),
    ModelSpec("resnet18", 0.25),
)

#: Every attack-time technique of chapter 5 (flatness.attacks.TECHNIQUES' transfer techniques).
_TECHNIQUES = ("mi", "di", "ti", "sgm", "gn", "linbp")
#: Every minimizer over the paper's rho grids (ASAM's adaptive rho: about ten times SAM's).
_PAPER_MINIMIZERS = MinimizerDesign(
    names=("sgd", "sam", "asam", "gsam", "looksam", "gam", "sagm", "swa"),
    rhos={"sam": (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0), "asam": (0.5, 1.0, 2.0, 5.0),
          "gsam": (0.05, 0.3), "looksam": (0.05, 0.3), "gam": (0.2, 1.0), "sagm": (0.05, 0.3)})
_PAPER_COMPLEMENTARITY = ComplementarityDesign(techniques=_TECHNIQUES, sat_steps=3,
                                               lgv_epochs=10, lgv_models=40)

SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        train_subset=512,
        eval_subset=256,
        surrogate=ModelSpec("resnet18", 0.125),
        epochs=3,
        decay_epochs=(1, 2),
        lr=0.05,
        batch_size=64,
        targets=(ModelSpec("vgg19_bn", 0.125), ModelSpec("resnet18", 0.125)),
        # a little more than the surrogate's budget: with 2 epochs on 512 images both targets
        # sit near chance and, depending on the thread count, may get no test image right jointly
        target_epochs=3,
        target_decay_epochs=(2,),
        target_train_subset=1024,
        n_attack_images=32,
        eps=8 / 255,
        attack_steps=5,
        seeds=(0,),
        robust_dataset_size=128,
        robust_model_epochs=2,
        robust_iterations=10,
        robust_adv_steps=3,
        robust_attack_steps=10,
        lsam_rho=0.3,
        robust_features=RobustFeaturesDesign(fig3_every=1),
        hessian=HessianDesign(every=1, images=128, batch=64, trace_samples=5, max_iter=10),
        landscape=LandscapeDesign(grid=5, grid_2d=5, images=128, directions=2),
        minimizers=MinimizerDesign(names=("sgd", "sam", "swa"), rhos={"sam": (0.05, 0.3)}),
        complementarity=ComplementarityDesign(techniques=("mi", "di"), sat_steps=1,
                                              lgv_epochs=1, lgv_models=2),
        regimes=RegimeDesign(cells=((256, 3, 0.125), (512, 3, 0.125)), rhos=(0.0, 0.05),
                             seeds=(0,), curve_points=3, sharpness_images=128,
                             late_rhos=(0.05,)),
    ),
    "cpu": Scale(
        name="cpu",
        # chosen by the regime map (chapter 0, results/cpu/regimes.json, seeds 0-1, bf16): of
        # the cells 2,000 x 60, 5,000 x 36, 10,000 x 24 and 20,000 x 15 epochs (width 0.25, about
        # the same compute), the largest set transfers best (SGD fooled 76.7 % of the targets'
        # images against 13.5-64.6 % for the others, at test accuracy 0.72) and is where SAM rho
        # 0.05 beats fully trained SGD beyond its seed spread (+2.7 +- 1.0 points). No cell fits
        # its training set (training accuracy 0.66-0.76): the paper's overfitting regime lies
        # beyond 2 cores. The former cpu scale (2,000 images x 90 epochs) transferred at 19-24 %.
        train_subset=20_000,
        eval_subset=2000,
        surrogate=ModelSpec("resnet18", 0.25),
        epochs=15,
        decay_epochs=(5, 10),  # the paper's shape: /10 after 1/3 and 2/3 of training
        lr=0.05,
        batch_size=128,
        checkpoint_every=1,
        targets=_CPU_TARGETS,
        # 30 epochs on 10,000 images: the targets reach 0.61-0.74 test accuracy
        target_epochs=30,
        target_decay_epochs=(15, 23),
        target_train_subset=10_000,
        n_attack_images=500,
        eps=8 / 255,
        attack_steps=10,
        seeds=(0, 1, 2),
        # Ilyas et al.'s datasets as large as the surrogate's training set, so that surrogates
        # trained on them sit in the same regime as the CIFAR-10 one
        robust_dataset_size=20_000,
        robust_model_epochs=10,
        robust_iterations=40,
        robust_inversion_step_size=0.3,
        robust_adv_steps=3,
        robust_attack_steps=10,
        # l-SAM: the largest radius of the map at which this cell's surrogate still trains to
        # within 10 points of SGD's test accuracy (rho 0.1: 0.660 against 0.723; at 0.2 it
        # reaches 0.554 and fools 37 % of the targets' images, the short budget's collapse, which
        # chapter 4's SAM grid still shows); the paper's 0.3 is for converged ResNet-50s
        lsam_rho=0.1,
        robust_features=RobustFeaturesDesign(fig3_every=1),
        # plain Hutchinson, as the regime map's sharpness jobs (which share these settings' key)
        hessian=HessianDesign(every=1, images=500, batch=100, trace_samples=10, max_iter=20,
                              trace_method="hutchinson"),
        landscape=LandscapeDesign(grid=21, grid_2d=11, images=500),
        # every minimizer of the paper at a standard and a large radius (ASAM's adaptive radius
        # lives on a scale about ten times SAM's; GAM's pair is the paper's), SAM over four
        minimizers=MinimizerDesign(
            names=("sgd", "sam", "asam", "gsam", "looksam", "gam", "sagm", "swa"),
            rhos={"sam": (0.02, 0.05, 0.1, 0.2), "asam": (0.5, 2.0), "gsam": (0.05, 0.2),
                  "looksam": (0.05, 0.2), "gam": (0.2, 1.0), "sagm": (0.05, 0.2)},
            # LookSAM's reused direction at the paper's weight alpha 0.7 stalls this recipe (lr
            # 0.05, momentum 0.9): rho 0.05 reached 0.39 test accuracy where SAM reached 0.70,
            # with whole-vector or per-tensor norms alike. 0.1 is the largest alpha of 0.1, 0.2,
            # 0.3, 0.7 that trains as well as SAM over 3 epochs on 5,000 images (training loss
            # 1.83, 1.88, 1.91, 2.07 against SAM's 1.87 and SGD's 1.81 on seed 0; at 0.1 on
            # seed 1, 1.76 against 1.77 and 1.77): benchmarks/looksam_alpha.py
            hyperparameters={"looksam": {"alpha": 0.1}},
            # a fourth seed for the headline pair, SGD and SAM's grid: over seeds 0-2, SAM 0.02
            # minus fully trained SGD is +4.8, +1.1, +3.4 points (t = 2.9, below the 4.30 that
            # three seeds need; four need 3.18), SAM 0.05 +2.9, +2.5, -0.2; about 2 h of
            # single-thread compute (SGD 11 min, SAM 22 min per run). The other minimizers keep
            # three and are paired with SGD on those
            seeds={"sgd": (0, 1, 2, 3), "sam": (0, 1, 2, 3)}),
        complementarity=ComplementarityDesign(techniques=_TECHNIQUES, sat_steps=1,
                                              lgv_epochs=2, lgv_models=8),
        # four training-set sizes at one width, each with an epoch budget that shrinks as the
        # set grows. Measured on a 2-core CPU without native bf16 (fp32): one process with two
        # threads trains 10,000 images of width 0.25 in 26 s per epoch, two single-thread
        # processes in 40 s each (500 images/s together); SAM costs twice SGD. A cell costs
        # train_subset x epochs x (1 + 2 x 3 SAM radii + 2/3 x 2 late-phase radii) image-epochs
        # per seed: about 12 h for the map with its attacks and Hessians (reproduce --plan);
        # a width-0.5 cell would cost four times as much and is left to the gpu scale
        regimes=RegimeDesign(cells=((2000, 60, 0.25), (5000, 36, 0.25), (10000, 24, 0.25),
                                    (20000, 15, 0.25)),
                             rhos=(0.0, 0.05, 0.1, 0.2), seeds=(0, 1), curve_points=12,
                             sharpness_images=500, late_rhos=(0.05, 0.2)),
    ),
    "gpu": Scale(
        name="gpu",
        train_subset=None,
        eval_subset=None,
        surrogate=ModelSpec("resnet18"),
        epochs=60,
        decay_epochs=(20, 40),
        lr=0.05,
        batch_size=128,
        targets=(
            ModelSpec("resnet18"),
            ModelSpec("vgg19_bn"),
            ModelSpec("densenet121"),
            ModelSpec("mobilenetv2"),
            ModelSpec("googlenet"),
            ModelSpec("senet18"),
        ),
        target_epochs=40,
        target_decay_epochs=(20, 30),
        n_attack_images=2000,
        eps=4 / 255,
        attack_steps=50,
        seeds=(0, 1, 2),
        robust_dataset_size=None,
        robust_model_epochs=60,
        robust_iterations=1000,
        lsam_rho=0.3,
        robust_features=RobustFeaturesDesign(fig3_every=2),
        hessian=HessianDesign(every=4, images=10_000, batch=100, trace_samples=20, max_iter=50),
        landscape=LandscapeDesign(grid=31, grid_2d=31, images=2000),
        minimizers=_PAPER_MINIMIZERS,
        complementarity=_PAPER_COMPLEMENTARITY,
        regimes=RegimeDesign(cells=((5000, 60, 1.0), (10000, 60, 1.0), (20000, 60, 1.0),
                                    (50000, 60, 1.0), (50000, 30, 1.0), (50000, 60, 0.5)),
                             rhos=(0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5), seeds=(0, 1),
                             curve_points=20, sharpness_images=5000, late_rhos=(0.05, 0.3)),
    ),
    "paper": Scale(
        name="paper",
        train_subset=None,
        eval_subset=None,
        surrogate=ModelSpec("resnet50"),
        epochs=150,
        decay_epochs=(50, 100),
        lr=0.05,
        batch_size=128,
        targets=(
            ModelSpec("resnet18"),
            ModelSpec("resnet50"),
            ModelSpec("preactresnet18"),
            ModelSpec("wideresnet28_10"),
            ModelSpec("vgg19_bn"),
            ModelSpec("densenet121"),
            ModelSpec("mobilenetv2"),
            ModelSpec("googlenet"),
            ModelSpec("resnext29"),
            ModelSpec("senet18"),
        ),
        target_epochs=150,
        target_decay_epochs=(50, 100),
        n_attack_images=2000,
        eps=4 / 255,
        attack_steps=50,
        seeds=(0, 1, 2),
        robust_dataset_size=None,
        robust_model_epochs=150,
        robust_iterations=1000,
        lsam_rho=0.3,
        robust_features=RobustFeaturesDesign(fig3_every=1),
        # the library's adaptive Hessian estimates, every 5th epoch
        hessian=HessianDesign(every=5, images=10_000, batch=100, trace_samples=None,
                              max_iter=None),
        landscape=LandscapeDesign(grid=51, grid_2d=51, images=2000),
        minimizers=_PAPER_MINIMIZERS,
        complementarity=_PAPER_COMPLEMENTARITY,
        regimes=RegimeDesign(cells=((10000, 150, 1.0), (25000, 150, 1.0), (50000, 150, 1.0),
                                    (50000, 75, 1.0)),
                             rhos=(0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0), seeds=(0, 1, 2),
                             curve_points=30, sharpness_images=10000, late_rhos=(0.05, 0.3)),
    ),
}


def get_scale(scale: str | Scale, **overrides: Any) -> Scale:
    """Look up a scale by name or label (``"cpu[lsam_rho=0.2]"``, :func:`scale_label`), or
    pass one through, and apply field overrides (nested ones by dotted name)."""
    if isinstance(scale, Scale):
        base = scale
    elif isinstance(scale, str) and "[" in scale:
        base = scale_from_label(scale)
    else:
        if not isinstance(scale, str) or scale not in SCALES:
            raise FlatnessError(
                f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}"
            )
        base = SCALES[scale]
    return base.replace(**overrides) if overrides else base


def scale_label(scale: Scale, fields: tuple[str, ...] | None = None) -> str:
    """``scale``'s name, with the settings (among ``fields``, top-level names; default: all)
    that differ from the named scale: ``"cpu"`` or ``"cpu[robust_dataset_size=1000;epochs=40]"``
    or ``"cpu[minimizers.rhos={...}]"`` (read by :func:`scale_from_label`)."""
    ours, named = leaves(scale), leaves(get_scale(scale.name))
    changed = [n for n, value in ours.items() if n != "name"
               and (fields is None or n.split(".")[0] in fields) and value != named.get(n)]
    if not changed:
        return scale.name
    return scale.name + "[" + ";".join(f"{n}={format_value(ours[n])}" for n in changed) + "]"


def scale_from_label(label: str) -> Scale:
    """The scale a :func:`scale_label` names: ``"cpu[epochs=40]"`` is ``cpu`` with 40 epochs."""
    name, bracket, rest = label.partition("[")
    if not bracket:
        return get_scale(name)
    if not rest.endswith("]"):
        raise FlatnessError(f"malformed scale label {label!r}: expected NAME[FIELD=VALUE;...]")
    return get_scale(name, **parse_overrides(rest[:-1].split(";")))


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """Parse ``["epochs=40", "eps=4/255"]`` from ``--set`` options."""
    overrides: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FlatnessError(f"--set expects FIELD=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides
