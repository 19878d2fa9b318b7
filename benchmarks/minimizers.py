"""Step time of every minimizer relative to SGD, on one model and batch, in one run.

    python benchmarks/minimizers.py [--device cuda] [--arch resnet18 --width 0.25 --batch 128]
                                    [--rounds 5 --block 5]

Each minimizer (and pytorch-optimizer's SAM, for comparison) gets its own copy of the model.
After a warm-up block, the script times ``--rounds`` rounds; in each round every method runs
one block of ``--block`` consecutive steps (a multiple of LookSAM's k, so its occasional SAM
step is counted in proportion), round-robin, so that machine noise hits all methods alike.
The figure is the median over rounds of the block time divided by the block length;
``torch.cuda.synchronize`` brackets each block on CUDA only. Targets (issue 3): sam/asam at
most 2.1x SGD, looksam (k=5) at most 1.4x, ours not slower than pytorch-optimizer's SAM.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from flatness.device import autocast, memory_format, resolve_device
from flatness.minimizers import MINIMIZERS, build_minimizer

TARGETS = {"sam": 2.1, "asam": 2.1, "looksam": 1.4}


def build_network(arch: str, width: float) -> tuple[nn.Module, str]:
    try:
        from flatness.models import build_model
    except ImportError:  # the zoo is not there yet: a small local CNN
        net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
        return net, "local CNN (flatness.models missing)"
    return build_model(arch, width=width), f"{arch} width {width}"


def make_steppers(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                  names: list[str]) -> dict[str, Callable[[], None]]:
    """One zero-argument 'training step' per method, each on its own copy of the model."""
    steppers: dict[str, Callable[[], None]] = {}

    def closure_for(net: nn.Module) -> Callable[[], torch.Tensor]:
        def closure() -> torch.Tensor:
            with autocast(device):
                loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            return loss.detach()
        return closure

    for name in names:
        net = copy.deepcopy(model)
        base = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        hp = {"k": 5} if name == "looksam" else {"epochs": 1} if name == "swa" else {}
        minimizer = build_minimizer(name, net, base, **hp)
        closure = closure_for(net)

        def step(minimizer=minimizer, closure=closure) -> None:
            minimizer.zero_grad(set_to_none=True)
            minimizer.step(closure)
        steppers[name] = step

    try:
        from pytorch_optimizer import SAM
        from pytorch_optimizer.optimizer.utils.model import (
            disable_running_stats,
            enable_running_stats,
        )
    except ImportError:
        return steppers
    net = copy.deepcopy(model)
    reference = SAM(net.parameters(), torch.optim.SGD, rho=0.05, lr=0.01, momentum=0.9,
                    weight_decay=5e-4)
    ref_closure = closure_for(net)

    def ref_step() -> None:
        reference.zero_grad()
        enable_running_stats(net)
        ref_closure()
        disable_running_stats(net)

        def closure() -> torch.Tensor:
            reference.zero_grad()
            return ref_closure()
        reference.step(closure)
    steppers["pytorch_optimizer.SAM"] = ref_step
    return steppers


def time_block(step: Callable[[], None], block: int, device: torch.device,
               clock: Callable[[], float] = time.perf_counter) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    for _ in range(block):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - start) / block


def step_times(device: torch.device, *, arch: str = "resnet18", width: float = 0.25,
               batch: int = 128, rounds: int = 5, block: int = 5, names: list[str] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> tuple[dict[str, float], str]:
    """Median seconds per step of each method (and the network's label), round-robin."""
    torch.manual_seed(0)
    model, label = build_network(arch, width)
    layout = memory_format(device, model)
    model = model.to(device, memory_format=layout)
    x = torch.rand(batch, 3, 32, 32, device=device).to(memory_format=layout)
    y = torch.randint(0, 10, (batch,), device=device)
    steppers = make_steppers(model, x, y, device, list(MINIMIZERS) if names is None else names)
    for step in steppers.values():  # warm-up: allocator, cuDNN autotuning, LookSAM's g_v
        time_block(step, block, device)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            times[name].append(time_block(step, block, device, clock))
    return {name: statistics.median(t) for name, t in times.items()}, label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", "--steps", type=int, default=5, dest="rounds",
                        help="timed rounds (median over them)")
    parser.add_argument("--block", type=int, default=5, help="steps per timed block")
    parser.add_argument("--minimizers", nargs="*", default=list(MINIMIZERS))
    parser.add_argument("--clock", choices=["auto", "wall", "cpu"], default="auto",
                        help="wall: elapsed time; cpu: this process's CPU time, robust to other "
                        "jobs sharing the cores (auto: cpu on a CPU device, wall on CUDA)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (1 makes CPU-time figures robust on a "
                        "shared machine: no OpenMP spin-waiting)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    use_cpu_clock = args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu")
    clock = time.process_time if use_cpu_clock else time.perf_counter
    median, label = step_times(device, arch=args.arch, width=args.width, batch=args.batch,
                               rounds=args.rounds, block=args.block, names=args.minimizers,
                               clock=clock)

    threads = torch.get_num_threads()
    print(f"# {label}, batch {args.batch}, device {device} ({threads} threads), "
          f"torch {torch.__version__}; median of {args.rounds} rounds x {args.block} steps, "
          f"{'process CPU' if use_cpu_clock else 'wall-clock'} time")
    print(f"{'method':<22} {'ms/step':>9} {'x SGD':>7} {'target':>7}")
    sgd = median.get("sgd")
    for name, seconds in median.items():
        ratio = f"{seconds / sgd:.2f}" if sgd else "-"
        target = f"<= {TARGETS[name]}" if name in TARGETS else ""
        print(f"{name:<22} {seconds * 1e3:>9.1f} {ratio:>7} {target:>7}")
    if "sam" in median and "pytorch_optimizer.SAM" in median:
        print(f"\nsam / pytorch_optimizer.SAM = "
              f"{median['sam'] / median['pytorch_optimizer.SAM']:.3f} (target <= 1)")


if __name__ == "__main__":
    main()
