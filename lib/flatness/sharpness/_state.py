"""Leave the model as we found it: evaluation mode during a computation, then every module's
training flag and every parameter's ``.grad`` restored (weights and BatchNorm statistics are
never written: all computations go through ``torch.func.functional_call`` on copies, except the
PyHessian engine, which builds graphs on the model's own parameters)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore each module's ``training`` flag and grads on exit."""
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.grad) for param in model.parameters()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, grad in grads:
            param.grad = grad


def split_state(
    model: nn.Module,
) -> tuple[list[str], tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """(names, detached values) of the trainable parameters, and everything else fixed.

    The fixed dict holds frozen parameters and all buffers (BatchNorm running statistics), so
    ``functional_call(model, {**dict(zip(names, values)), **fixed}, x)`` evaluates the model
    at other trainable weights without touching it.
    """
    names, values, fixed = [], [], {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            names.append(name)
            values.append(param.detach())
        else:
            fixed[name] = param.detach()
    for name, buf in model.named_buffers():
        fixed[name] = buf.detach()
    return names, tuple(values), fixed
