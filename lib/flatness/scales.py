"""Named experiment sizes (``smoke``, ``cpu``, ``gpu``, ``paper``), defined once, as data.

Every chapter and command takes a scale name; any field can be overridden one at a time
(``get_scale("cpu", epochs=40)`` or ``--set epochs=40`` on the command line). The ``paper``
scale is the protocol of ``shared/PAPER.md``; the others shrink it while keeping its shape
(two learning-rate decays at 1/3 and 2/3 of training, several targets, BIM L-inf).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from flatness.errors import FlatnessError
from flatness.precision import DEFAULT_PRECISION, check_precision


@dataclass(frozen=True)
class ModelSpec:
    """An architecture with its size knobs (``width`` multiplies the published channel counts)."""

    arch: str
    width: float = 1.0
    depth: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Scale:
    """All size parameters of the study at one scale."""

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
    # sharpness
    sharpness_images: int = 10_000
    sharpness_batch: int = 100
    landscape_grid: int = 51
    # robust / non-robust datasets (Ilyas et al. 2019)
    robust_dataset_size: int | None = None  # None = the whole training set
    robust_model_epochs: int = 0
    robust_iterations: int = 1000
    robust_inversion_step_size: float = 0.1  # L2-normalised steps of the representation inversion
    robust_adv_steps: int = 7  # PGD steps of the robust model's adversarial training
    robust_attack_steps: int = 100  # targeted PGD steps building D_rand / D_det
    # training precision (flatness.precision): auto = bf16 autocast on CUDA, fp32 on CPU
    precision: str = DEFAULT_PRECISION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_precision(self.precision)

    def replace(self, **overrides: Any) -> Scale:
        """A copy with some fields changed (values are coerced to the field's type)."""
        hints = _field_types()
        coerced = {}
        for key, value in overrides.items():
            if key not in hints:
                raise FlatnessError(
                    f"unknown scale field {key!r}; known fields: {', '.join(sorted(hints))}"
                )
            coerced[key] = _coerce(hints[key], value, key)
        return dataclasses.replace(self, **coerced)

    def to_dict(self) -> dict[str, Any]:
        """The fields (precision included: an identity names what runs)."""
        return dataclasses.asdict(self)


@functools.cache
def _field_types() -> dict[str, Any]:
    """Scale's fields and their annotated types (resolved once: annotations are strings)."""
    return typing.get_type_hints(Scale)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Read a (possibly string) override as the field's annotated type ``hint``: numbers,
    ``4/255``, comma lists, model specs, and ``none``/``all`` for an optional field."""
    if not isinstance(value, str):
        return value
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if optional and value.strip().lower() in {"none", "all"}:
        return None  # an optional size: "all" of the images
    try:
        if typing.get_origin(base) is tuple:
            element = typing.get_args(base)[0]
            return tuple(_parse_scalar(element, p) for p in value.split(",") if p.strip())
        return _parse_scalar(base, value)
    except ValueError as exc:
        raise FlatnessError(f"scale field {key}: cannot read {value!r} ({exc})") from None


def _parse_scalar(kind: Any, text: str) -> Any:
    if kind is bool:
        return text.strip().lower() in {"1", "true", "yes", "on"}
    if kind is int:
        return int(text)
    if kind is float:
        return parse_number(text)
    if kind is ModelSpec:
        return parse_model_spec(text)
    return text


def parse_number(text: str | float | int) -> float:
    """Parse ``0.5``, ``4/255`` or ``8e-3`` into a float (fractions are common for eps)."""
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a number: {text!r}") from None


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``resnet18``, ``resnet18@0.25`` (width) or ``resnet18@0.25:2`` (width, depth)."""
    arch, _, rest = text.strip().partition("@")
    width_text, _, depth_text = rest.partition(":")
    return ModelSpec(
        arch=arch,
        width=float(width_text) if width_text else 1.0,
        depth=int(depth_text) if depth_text else None,
    )


# Cheap on CPU (measured: one forward-backward of a 128-batch costs 0.14-0.28 s at width 0.25
# for these, 1.4-2.6 s for DenseNet-121, ResNeXt-29, WRN-28-10 and GoogLeNet); one target
# shares the surrogate's architecture (intra-architecture), three do not.
_CPU_TARGETS = (
    ModelSpec("vgg19_bn", 0.25),
    ModelSpec("preactresnet18", 0.25),
    ModelSpec("senet18", 0.25),
    ModelSpec("resnet18", 0.25),
)

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
        sharpness_images=128,
        sharpness_batch=64,
        landscape_grid=5,
        robust_dataset_size=128,
        robust_model_epochs=2,
        robust_iterations=10,
        robust_adv_steps=3,
        robust_attack_steps=10,
    ),
    "cpu": Scale(
        name="cpu",
        # few images, many epochs: the surrogate fits its training set (0.92 training accuracy,
        # as the paper's surrogates do) so that transferability can peak after the first decay
        # and decline while the model overfits; with 5,000 images for 30 epochs it underfit
        train_subset=2000,
        eval_subset=2000,
        surrogate=ModelSpec("resnet18", 0.25),
        epochs=90,
        decay_epochs=(30, 60),
        lr=0.05,
        batch_size=128,
        checkpoint_every=3,
        targets=_CPU_TARGETS,
        # 30 epochs: the targets reach 0.61-0.74 test accuracy (15 epochs left them at 0.39-0.67)
        target_epochs=30,
        target_decay_epochs=(15, 23),
        target_train_subset=10_000,
        n_attack_images=500,
        eps=8 / 255,
        attack_steps=10,
        # two SGD surrogates on the same 2,000 images (other initialisation and batch order)
        # differed by 12 points of success at the final epoch, more than the minimizers did:
        # two seeds could not rank them, nor settle early stopping's gains
        seeds=(0, 1, 2, 3),
        sharpness_images=1000,
        sharpness_batch=100,
        landscape_grid=21,
        # Ilyas et al.'s datasets need more images than the surrogate: with 2,000, targets on
        # D_det stay at chance and surrogates on D_R are less robust than CIFAR-10 ones
        robust_dataset_size=5000,
        robust_model_epochs=10,
        robust_iterations=40,
        robust_inversion_step_size=0.3,
        robust_adv_steps=3,
        robust_attack_steps=10,
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
        sharpness_images=10_000,
        sharpness_batch=100,
        landscape_grid=31,
        robust_dataset_size=None,
        robust_model_epochs=60,
        robust_iterations=1000,
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
        sharpness_images=10_000,
        sharpness_batch=100,
        landscape_grid=51,
        robust_dataset_size=None,
        robust_model_epochs=150,
        robust_iterations=1000,
    ),
}


def get_scale(scale: str | Scale, **overrides: Any) -> Scale:
    """Look up a scale by name (or pass one through) and apply field overrides."""
    if isinstance(scale, Scale):
        base = scale
    else:
        if not isinstance(scale, str) or scale not in SCALES:
            raise FlatnessError(
                f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}"
            )
        base = SCALES[scale]
    return base.replace(**overrides) if overrides else base


def format_field(value: Any) -> str:
    """A scale field's value as the text :meth:`Scale.replace` reads back (``--set`` syntax)."""
    if isinstance(value, ModelSpec):
        depth = "" if value.depth is None else f":{value.depth}"
        return f"{value.arch}@{value.width:g}{depth}"
    if isinstance(value, tuple):
        return ",".join(format_field(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def scale_label(scale: Scale, fields: tuple[str, ...] | None = None) -> str:
    """``scale``'s name, with the ``fields`` (default: all) that differ from the named scale:
    ``"cpu"`` or ``"cpu[robust_dataset_size=1000;epochs=40]"`` (read by :func:`scale_from_label`).
    """
    named = get_scale(scale.name)
    names = [f.name for f in dataclasses.fields(Scale) if f.name not in {"name", "extra"}]
    changed = [n for n in names if (fields is None or n in fields)
               and getattr(scale, n) != getattr(named, n)]
    if not changed:
        return scale.name
    return scale.name + "[" + ";".join(f"{n}={format_field(getattr(scale, n))}"
                                       for n in changed) + "]"


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
