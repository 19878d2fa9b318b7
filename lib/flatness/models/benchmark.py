"""Training-step cost of every zoo architecture on this machine (sizes the ``cpu`` scale).

``python -m flatness.models.benchmark --width 0.25 --batch 128`` prints, per architecture, the
parameter count and the median wall-clock and process-CPU time of one forward+backward pass
in train mode. On a shared machine the CPU time (with ``--threads 1``) is the stable figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from flatness.models.registry import ARCHITECTURES, build_model, count_parameters


def step_seconds(arch: str, width: float, batch: int, repeats: int,
                 device: torch.device) -> tuple[float, float]:
    """Median (wall, CPU) seconds of forward + cross-entropy + backward (after 1 warm-up)."""
    torch.manual_seed(0)
    model = build_model(arch, width=width).to(device).train()
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    wall, cpu = [], []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        F.cross_entropy(model(x), y).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        model.zero_grad(set_to_none=True)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} width={args.width} "
          f"batch={args.batch}")
    print(f"{'arch':<16}{'params':>12}{'wall s':>10}{'cpu s':>10}")
    for arch in args.arch:
        params = count_parameters(build_model(arch, width=args.width))
        wall, cpu = step_seconds(arch, args.width, args.batch, args.repeats, device)
        print(f"{arch:<16}{params:>12,}{wall:>10.3f}{cpu:>10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
