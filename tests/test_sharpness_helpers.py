"""Helpers (no tests) shared by the sharpness and landscape tests: a known quadratic, a tiny
BN conv net, model snapshots."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def spectrum_matrix(eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A symmetric matrix ``Q diag(eigenvalues) Q^T`` with a seeded random rotation (float64)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g,
                                       dtype=torch.float64))
    return (q * eigenvalues.double()) @ q.T


class Quadratic(nn.Module):
    """Outputs ``0.5 (w - w*)^T A (w - w*)`` for every image: its loss Hessian is exactly A."""

    def __init__(self, a: torch.Tensor, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed + 1)
        self.w = nn.Parameter(torch.randn(len(a), generator=g, dtype=a.dtype))
        self.register_buffer("a", a)
        self.register_buffer("w_star", torch.randn(len(a), generator=g, dtype=a.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.w - self.w_star
        return (0.5 * d @ self.a @ d).expand(len(x))


def mean_output(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss adapter for :class:`Quadratic`: the mean of the model's outputs."""
    return outputs.mean()


def tiny_convnet(width: int = 4) -> nn.Sequential:
    """A ~500-parameter CIFAR-shaped conv net with BatchNorm (and a conv bias, a linear layer)."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10),
    )


def synthetic_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable CIFAR-shaped data in [0, 1]: a class prototype plus noise."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.rand(10, 3, 32, 32, generator=g)
    labels = torch.arange(n) % 10
    images = 0.6 * proto[labels] + 0.4 * torch.rand(n, 3, 32, 32, generator=g)
    return images, labels


def trained_convnet(n: int = 200, steps: int = 40, seed: int = 0):
    """(model in train mode, images, labels): the tiny net after a few dozen SGD steps."""
    torch.manual_seed(seed)
    model = tiny_convnet()
    images, labels = synthetic_data(n, seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, n, (50,), generator=g)
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model, images, labels


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list]:
    """Copies of the state dict, each module's training flag and each parameter's grad."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    return state, modes, grads


def assert_unchanged(model: nn.Module, before) -> None:
    """The model's weights, buffers, training flags and grads equal the snapshot ``before``."""
    state, modes, grads = snapshot(model)
    ref_state, ref_modes, ref_grads = before
    assert state.keys() == ref_state.keys()
    for key in state:
        assert torch.equal(state[key], ref_state[key]), f"{key} changed"
    assert modes == ref_modes, "training flags changed"
    for g, ref in zip(grads, ref_grads):
        assert (g is None) == (ref is None)
        assert g is None or torch.equal(g, ref)
