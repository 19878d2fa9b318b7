"""Attack-time transfer techniques as small composable objects.

Each technique hooks into the iterative attack at one or more well-defined points:

- ``transform_input(x, rng)``: what the surrogates see at a step (DI);
- ``transform_gradient(grad, state)``: the input gradient before the step (TI, then MI:
  gradient transforms run in ``stage`` order, whatever order they were listed in);
- ``patch(model, rng)``: a context manager that changes the surrogate's backward or forward
  through forward hooks on the zoo's named modules (SGM, LinBP, ghost networks), removed on exit.

Public SGM, LinBP and ghost-network code is hard-wired to torchvision's ImageNet ResNets; these
work on any model of the project's zoo, which exposes ``ResidualBlock.residual``/``shortcut`` and
``nn.ReLU`` modules. MI, DI and TI follow torchattacks (MIFGSM, DIFGSM, TIFGSM), which the tests
use as the oracle; DI draws its random numbers in torchattacks' order so both agree seed for seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flatness.errors import FlatnessError
from flatness.models import relu_modules, residual_blocks


class AttackRNG:
    """The attack's random streams: a CPU generator for scalar draws (sizes, paddings, ghost
    factors) and one on the data device for tensors (random start, dropout masks).

    A generator on either device seeds both streams (the other is derived from it);
    ``generator=None`` uses torch's global generators, as torchattacks does.
    """

    def __init__(self, generator: torch.Generator | None, device: torch.device) -> None:
        self.device = device
        self.cpu = self.tensor = generator
        if generator is None:
            return
        # one seed fixes everything: the missing stream is derived from the given one
        if generator.device.type == "cpu" and device.type != "cpu":
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            self.tensor = torch.Generator(device).manual_seed(seed)
        elif generator.device.type != "cpu":  # a generator on the data device (one sync)
            seed = int(torch.randint(0, 2**62, (1,), generator=generator,
                                     device=generator.device))
            self.cpu = torch.Generator().manual_seed(seed)

    def uniform_scalar(self, low: float, high: float) -> torch.Tensor:
        """A 0-dim CPU tensor uniform in [low, high) (usable with CUDA tensors without a sync)."""
        return torch.empty(()).uniform_(low, high, generator=self.cpu)


class Technique:
    """Base class: every hook is a no-op; subclasses override the ones they need."""

    name: ClassVar[str] = ""
    stage: ClassVar[int] = 0  # order among gradient transforms (smaller first)

    def init_state(self, x: torch.Tensor) -> Any:
        """Per-chunk state for :meth:`transform_gradient` (e.g. MI's momentum)."""
        return None

    def transform_input(self, x: torch.Tensor, rng: AttackRNG) -> torch.Tensor:
        return x

    def transform_gradient(self, grad: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return grad, state

    def patch(self, model: nn.Module, rng: AttackRNG) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    @property
    def has_input_transform(self) -> bool:
        return type(self).transform_input is not Technique.transform_input

    @property
    def has_gradient_transform(self) -> bool:
        return type(self).transform_gradient is not Technique.transform_gradient

    def config(self) -> dict[str, Any]:
        """Name and parameters, for result files."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


def _l1_normalise(grad: torch.Tensor) -> torch.Tensor:
    """``grad / mean|grad|`` per example (MI-FGSM); an all-zero gradient stays zero."""
    scale = grad.abs().mean(dim=tuple(range(1, grad.ndim)), keepdim=True)
    return grad / scale.clamp_min(torch.finfo(grad.dtype).tiny)


@dataclass(frozen=True)
class Momentum(Technique):
    """MI-FGSM (Dong et al. 2018): ``g <- decay * g + grad / mean|grad|``; the step uses ``g``."""

    decay: float = 1.0
    name: ClassVar[str] = "mi"
    stage: ClassVar[int] = 20

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def transform_gradient(self, grad, state):
        grad = _l1_normalise(grad) + self.decay * state
        return grad, grad


@dataclass(frozen=True)
class InputDiversity(Technique):
    """DI-FGSM (Xie et al. 2019) as in torchattacks DIFGSM: with probability ``prob``, resize
    the batch to a random size between ``int(size * resize_rate)`` and ``size`` (or up to it when
    ``resize_rate > 1``) and zero-pad at a random offset. One draw per step for the whole chunk,
    as in the reference implementations; the random numbers are consumed in torchattacks' order.
    """

    resize_rate: float = 0.9
    prob: float = 0.5
    name: ClassVar[str] = "di"

    def __post_init__(self) -> None:
        if self.resize_rate <= 0 or not 0 <= self.prob <= 1:
            raise FlatnessError(
                f"di: resize_rate must be > 0 and prob in [0, 1] (got {self.resize_rate}, "
                f"{self.prob})"
            )

    def transform_input(self, x, rng):
        size = x.shape[-1]
        low, high = int(size * self.resize_rate), size
        if self.resize_rate >= 1:
            low, high = size, int(size * self.resize_rate)
        if high <= low:
            raise FlatnessError(
                f"di: resize_rate {self.resize_rate} gives no room to resize {size}-pixel images; "
                "use e.g. 0.9 or 1.1"
            )
        g = rng.cpu
        rnd = int(torch.randint(low, high, (1,), dtype=torch.int32, generator=g))
        rem = high - rnd
        top = int(torch.randint(0, rem, (1,), dtype=torch.int32, generator=g))
        left = int(torch.randint(0, rem, (1,), dtype=torch.int32, generator=g))
        if not bool(torch.rand(1, generator=g) < self.prob):
            return x
        rescaled = F.interpolate(x, size=[rnd, rnd], mode="bilinear", align_corners=False)
        return F.pad(rescaled, [left, rem - left, top, rem - top], value=0)


def gaussian_kernel(size: int, nsig: float) -> np.ndarray:
    """torchattacks' ``gkern``: outer product of N(0,1) densities on ``linspace(-nsig, nsig)``."""
    from scipy import stats

    x = np.linspace(-nsig, nsig, size)
    k1 = stats.norm.pdf(x)
    k = np.outer(k1, k1)
    return k / k.sum()


@dataclass(frozen=True)
class TranslationInvariance(Technique):
    """TI-FGSM (Dong et al. 2019): smooth the input gradient with a Gaussian kernel
    (depthwise, zero 'same' padding), as torchattacks TIFGSM. torchattacks' default kernel
    (15, for 299-pixel ImageNet images) is too wide for 32-pixel CIFAR; ours defaults to 7.
    """

    kernel_size: int = 7
    nsig: float = 3.0
    name: ClassVar[str] = "ti"
    stage: ClassVar[int] = 10

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise FlatnessError(f"ti: kernel_size must be odd and >= 1 (got {self.kernel_size})")

    def transform_gradient(self, grad, state):
        channels = grad.shape[1]
        kernel = torch.from_numpy(gaussian_kernel(self.kernel_size, self.nsig).astype(np.float32))
        kernel = kernel.to(grad.device, grad.dtype).expand(channels, 1, -1, -1)
        return F.conv2d(grad, kernel, padding="same", groups=channels), state


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; gradient multiplied by ``gamma`` backward."""

    @staticmethod
    def forward(ctx, x, gamma):
        ctx.gamma = gamma
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.gamma, None


@contextlib.contextmanager
def _hooks(handles: Sequence[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _require(modules: Sequence[nn.Module], technique: str, what: str) -> None:
    if not modules:
        raise FlatnessError(
            f"{technique} needs {what} but the surrogate has none; use a zoo model "
            "(flatness.models) or drop the technique"
        )


@dataclass(frozen=True)
class SkipGradient(Technique):
    """SGM (Wu et al. 2020): multiply the gradient flowing back through every residual branch
    by ``gamma`` (the skip connections pass it unchanged), via hooks on ``block.residual``."""

    gamma: float = 0.5
    name: ClassVar[str] = "sgm"

    def patch(self, model, rng):
        blocks = residual_blocks(model)
        _require(blocks, "sgm", "residual blocks")
        gamma = self.gamma
        hook = lambda module, inputs, out: _ScaleGrad.apply(out, gamma)  # noqa: E731
        return _hooks([b.residual.register_forward_hook(hook) for b in blocks])


@dataclass(frozen=True)
class LinearBackprop(Technique):
    """LinBP (Guo et al. 2020): ReLUs from ``start`` (a fraction of the model's ReLUs in forward
    order) on keep their forward value but back-propagate as the identity."""

    start: float = 0.5
    name: ClassVar[str] = "linbp"

    def __post_init__(self) -> None:
        if not 0 <= self.start <= 1:
            raise FlatnessError(
                f"linbp: start is a fraction of the ReLUs in [0, 1] (got {self.start})")

    def patch(self, model, rng):
        relus = relu_modules(model)
        _require(relus, "linbp", "nn.ReLU modules")
        first = int(self.start * len(relus))
        hook = lambda module, inputs, out: inputs[0] + (out - inputs[0]).detach()  # noqa: E731
        return _hooks([r.register_forward_hook(hook) for r in relus[first:]])


@dataclass(frozen=True)
class GhostNetwork(Technique):
    """Ghost networks (Li et al. 2020), a new random ghost at every forward pass:
    skip-connection erosion multiplies each block's shortcut by ``U[1 - skip, 1 + skip]``;
    dropout erosion drops each ReLU output unit with probability ``dropout`` (rescaled)."""

    skip: float = 0.22
    dropout: float = 0.0
    name: ClassVar[str] = "gn"

    def __post_init__(self) -> None:
        if self.skip < 0 or not 0 <= self.dropout < 1:
            raise FlatnessError(
                f"gn: skip must be >= 0 and dropout in [0, 1) (got {self.skip}, {self.dropout})"
            )

    def patch(self, model, rng):
        handles = []
        if self.skip > 0:
            blocks = residual_blocks(model)
            _require(blocks, "gn skip erosion", "residual blocks")

            def erode(module, inputs, out):
                return out * rng.uniform_scalar(1 - self.skip, 1 + self.skip).to(out.dtype)

            handles += [b.shortcut.register_forward_hook(erode) for b in blocks]
        if self.dropout > 0:
            relus = relu_modules(model)
            _require(relus, "gn dropout erosion", "nn.ReLU modules")
            keep = 1 - self.dropout

            def drop(module, inputs, out):
                mask = torch.empty_like(out).bernoulli_(keep, generator=rng.tensor)
                return out * mask / keep

            handles += [r.register_forward_hook(drop) for r in relus]
        return _hooks(handles)


TECHNIQUES: dict[str, type[Technique]] = {
    cls.name: cls
    for cls in (Momentum, InputDiversity, TranslationInvariance, SkipGradient, LinearBackprop,
                GhostNetwork)
}


def parse_techniques(spec: str | Sequence[str] | None, **params: Any) -> list[Technique]:
    """``"mi,di,ti"`` -> technique objects. ``params`` are ``<name>_<field>=value`` overrides,
    e.g. ``parse_techniques("mi,ti", mi_decay=0.5, ti_kernel_size=5)``."""
    if spec is None:
        names: list[str] = []
    elif isinstance(spec, str):
        names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    else:
        names = [s.strip().lower() for s in spec]
    unknown = [n for n in names if n not in TECHNIQUES]
    if unknown:
        raise FlatnessError(
            f"unknown technique(s) {', '.join(unknown)}; known: {', '.join(TECHNIQUES)}"
        )
    if len(set(names)) != len(names):
        raise FlatnessError(f"technique listed twice in {spec!r}")
    used: set[str] = set()
    out = []
    for name in names:
        cls = TECHNIQUES[name]
        kwargs = {}
        for f in fields(cls):
            key = f"{name}_{f.name}"
            if key in params:
                kwargs[f.name] = params[key]
                used.add(key)
        out.append(cls(**kwargs))
    extra = sorted(set(params) - used)
    if extra:
        raise FlatnessError(
            f"technique parameter(s) {', '.join(extra)} match no listed technique field; "
            "write <technique>_<field>, e.g. mi_decay=1.0"
        )
    return out
