"""LGV collection step time: ``flatness.attacks.lgv_collect`` at a precision against the
conventional loop (fp32, contiguous tensors, ``torch.optim.SGD``), in one run.

    python benchmarks/lgv_collect.py [--device cuda] [--arch resnet18 --width 0.25]
                                     [--batch 128 --steps 6 --rounds 3 --precision auto]

Both arms collect from copies of one model on the same synthetic batches. Each round times
``--steps`` SGD steps of the conventional loop, then the same number through
``lgv_collect`` (one collected model, at the end: a deep copy per collection is part of LGV's
cost), alternating so that machine noise hits both alike; the figure is the median over
rounds of the conventional seconds per step divided by ours. ``--precision auto`` resolves as
training does (:func:`flatness.precision.resolve_precision`: bf16 on CUDA and native-bf16 CPUs).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from flatness.attacks import lgv_collect
from flatness.device import resolve_device
from flatness.models import build_model
from flatness.precision import PRECISIONS, resolve_precision


def conventional(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                 lr: float) -> None:
    """What LGV's reference code does: fp32 SGD on a copy, contiguous tensors."""
    net = copy.deepcopy(model).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device.type)
    torch.manual_seed(0)
    model = build_model(args.arch, width=args.width).to(device).eval()
    batches = [(torch.rand(args.batch, 3, 32, 32, device=device),
                torch.randint(0, 10, (args.batch,), device=device)) for _ in range(args.steps)]

    def ours() -> None:
        lgv_collect(model, lambda: batches, 1, 0.1, 1, precision=precision)

    def theirs() -> None:
        conventional(model, batches, 0.1)

    ours(), theirs()  # warm-up: allocator, oneDNN/cuDNN kernel choice
    ratios = []
    for r in range(args.rounds):
        base, fast = timed(theirs, device), timed(ours, device)
        ratios.append(base / fast)
        print(f"round {r + 1}: conventional {base / args.steps:.3f} s/step, lgv_collect "
              f"({precision}, channels-last) {fast / args.steps:.3f} s/step", flush=True)
    print(f"{args.arch}@{args.width:g}, batch {args.batch}, {device}, {torch.get_num_threads()} "
          f"thread(s): lgv_collect at {precision} is {statistics.median(ratios):.2f}x the "
          f"conventional fp32 loop (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
