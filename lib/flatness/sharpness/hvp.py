"""Hessian-vector products of the subset loss: batched forward-over-reverse through ``torch.func``,
and single vectors through a retained double-backward graph.

The loss is the mean of ``loss_fn(model(x_b), y_b)`` over batches weighted by batch size (the
mean over the subset for a mean-reduced loss, as PyHessian's dataloader mode computes it). In
eval mode the per-image losses do not depend on the batching, so ``batch_size`` is only a
memory knob. ``H v`` is ``jvp(grad(loss), w, v)``: one forward-mode pass through the backward
graph, cheaper than PyHessian's double backward, and batched over several vectors with
``vmap`` (the primal forward/backward is then shared by all vectors). ``mode="rev-rev"``
computes ``vjp(grad(loss))`` instead (reverse-over-reverse, PyHessian's scheme, also vmapped):
on small CPU models it measured faster than forward-over-reverse, so it stays selectable.
Vectors are flat fp32 tensors on the device; the weights and buffers are detached copies
passed through ``functional_call``, so the model itself is never modified.

Lanczos asks for one vector at a time, and there the primal pass dominates: a product that
rebuilds the gradient's graph costs about what PyHessian's does. So, in the default mode, the
gradient of each batch is built once with ``create_graph=True`` and kept (one graph reused by
every product: the reverse pass over it alone, 0.57 s against PyHessian's 0.82 s on a
ResNet-18@0.0625 over 200 images, 1 thread; blocks of vectors are batched through it with
``is_grads_batched``), for as many batches as fit half the free
accelerator memory or a quarter of the available host memory (the graph's saved tensors are
measured on the first batch); the other batches recompute their product each time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from flatness.device import memory_budget
from flatness.sharpness._state import split_state

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
HVP_MODES = ("fwd-rev", "rev-rev")


def saved_bytes(roots: tuple[torch.Tensor, ...]) -> int:
    """Bytes of the tensors the autograd graph behind ``roots`` has saved for its backward.

    Read from the graph's nodes (their documented ``_saved_*`` attributes), each storage once,
    after the graph is built: a ``saved_tensors_hooks`` pack hook that hands back the tensor it
    measures would tie every saved output to its own node through a Python object, a cycle the
    garbage collector cannot see, and each operator's graphs (~0.6 GB per ResNet-18 epoch at
    500 images) would never be freed.
    """
    seen_nodes: set[int] = set()
    seen_data: set[int] = set()
    total = 0
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        for name in dir(node):
            if not name.startswith("_saved_"):
                continue
            try:
                value = getattr(node, name)
            except RuntimeError:  # a saved variable already freed
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(t, torch.Tensor) and t.data_ptr() not in seen_data:
                    seen_data.add(t.data_ptr())
                    total += t.numel() * t.element_size()
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return total


class HessianOperator:
    """The Hessian of the subset loss at the model's weights, a linear operator on flat vectors."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 loss_fn: LossFn, batch_size: int, device: torch.device,
                 mode: str = "fwd-rev") -> None:
        if mode not in HVP_MODES:
            raise ValueError(f"unknown Hessian-vector product mode {mode!r}; use {HVP_MODES}")
        self.mode = mode
        self.model = model
        self.loss_fn = loss_fn
        names, values, fixed = split_state(model)
        self.names = names
        self.params = tuple(v.to(device) for v in values)
        self.fixed = {k: v.to(device) for k, v in fixed.items()}
        self.shapes = [p.shape for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.dtype = self.params[0].dtype if self.params else torch.float32
        self.device = device
        n = len(images)
        self.batches = [
            (images[i:i + batch_size].to(device, non_blocking=True),
             labels[i:i + batch_size].to(device, non_blocking=True),
             min(batch_size, n - i) / n)
            for i in range(0, n, batch_size)
        ]
        self.hvp_count = 0  # number of single-vector Hessian-vector products computed
        self._graphs: list[tuple[torch.Tensor, ...]] | None = None  # retained, batch by batch
        self._leaves: tuple[torch.Tensor, ...] = ()

    def _loss(self, params: tuple[torch.Tensor, ...], x: torch.Tensor,
              y: torch.Tensor) -> torch.Tensor:
        state = dict(zip(self.names, params))
        state.update(self.fixed)
        return self.loss_fn(functional_call(self.model, state, (x,)), y)

    def unflatten(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split a flat (..., dim) tensor into parameter-shaped tensors (leading dims kept)."""
        lead = flat.shape[:-1]
        chunks = flat.split(self.numels, dim=-1)
        return tuple(c.reshape(*lead, *s) for c, s in zip(chunks, self.shapes))

    def flatten(self, parts: tuple[torch.Tensor, ...], lead: int = 0) -> torch.Tensor:
        """Concatenate parameter-shaped tensors into flat vectors (keeping ``lead`` dims)."""
        return torch.cat([p.reshape(*p.shape[:lead], -1) for p in parts], dim=-1)

    def _retain_graphs(self) -> list[tuple[torch.Tensor, ...]]:
        """Each batch's weighted gradient with its graph, while they fit the memory budget."""
        if self._graphs is not None:
            return self._graphs
        self._leaves = tuple(p.detach().requires_grad_(True) for p in self.params)
        self._graphs, per_batch, budget = [], 0, memory_budget(self.device)
        for x, y, weight in self.batches:
            with torch.enable_grad():
                loss = self._loss(self._leaves, x, y) * weight
                self._graphs.append(torch.autograd.grad(loss, self._leaves, create_graph=True))
            per_batch = per_batch or saved_bytes(self._graphs[0])
            if per_batch * len(self._graphs) > budget:
                self._graphs.pop()
                break
        return self._graphs

    def gradient(self) -> torch.Tensor:
        """The flat gradient of the subset loss (free from the retained graphs)."""
        graphs = self._retain_graphs() if self.mode == "fwd-rev" else []
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for grads in graphs:
            total.add_(self.flatten(tuple(g.detach() for g in grads)))
        grad_fn = grad(self._loss)
        for x, y, weight in self.batches[len(graphs):]:
            total.add_(self.flatten(grad_fn(self.params, x, y)), alpha=weight)
        return total

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for one flat vector ``v``."""
        return self.matmat(v.unsqueeze(0)).squeeze(0)

    def matmat(self, vs: torch.Tensor) -> torch.Tensor:
        """``H v_i`` for a block ``vs`` of flat vectors (k, dim): through the retained graphs
        (mode fwd-rev), the other batches sharing their primal pass across the block."""
        self.hvp_count += len(vs)
        graphs = self._retain_graphs() if self.mode == "fwd-rev" else []
        total = torch.zeros(vs.shape, dtype=self.dtype, device=self.device)
        tangents = self.unflatten(vs.to(self.dtype))
        single = len(vs) == 1
        for grads in graphs:
            parts = torch.autograd.grad(
                grads, self._leaves, grad_outputs=[t[0] for t in tangents] if single else tangents,
                retain_graph=True, is_grads_batched=not single)
            total.add_(self.flatten(parts, lead=0 if single else 1).reshape(vs.shape))
        if len(graphs) < len(self.batches):
            total.add_(self._products(vs, self.batches[len(graphs):]))
        return total

    def _products(self, vs: torch.Tensor, batches: list) -> torch.Tensor:
        """The products over ``batches``, recomputing each batch's primal pass."""
        tangents = self.unflatten(vs.to(self.dtype))
        grad_fn = grad(self._loss)
        total = torch.zeros(vs.shape, dtype=self.dtype, device=self.device)
        for x, y, weight in batches:
            def batch_grad(p: tuple[torch.Tensor, ...], x=x, y=y) -> tuple[torch.Tensor, ...]:
                return grad_fn(p, x, y)

            if self.mode == "fwd-rev":
                def hvp(t: tuple[torch.Tensor, ...], g=batch_grad) -> tuple[torch.Tensor, ...]:
                    return jvp(g, (self.params,), (t,))[1]
            else:
                pull = vjp(batch_grad, self.params)[1]  # one backward graph, pulled back per vector

                def hvp(t: tuple[torch.Tensor, ...], pull=pull) -> tuple[torch.Tensor, ...]:
                    return pull(t)[0]
            out = hvp(tuple(t[0] for t in tangents)) if len(vs) == 1 else vmap(hvp)(tangents)
            flat = self.flatten(out, lead=0) if len(vs) == 1 else self.flatten(out, lead=1)
            total.add_(flat.reshape(vs.shape), alpha=weight)
        return total
