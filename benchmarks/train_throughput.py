"""Training throughput: this engine against a conventional PyTorch pipeline, in one run.

Conventional baseline: a torchvision-style ``Dataset`` of PIL images with ``RandomCrop(32, 4)``,
``RandomHorizontalFlip`` and ``ToTensor`` transforms, a ``DataLoader``, fp32, and the usual
``loss.item()`` per step. This engine: uint8 data resident on the device, batched on-device
augmentation, channels-last + bf16 autocast on CUDA, no per-step host syncs.

    python benchmarks/train_throughput.py                    # CPU, the cpu scale's surrogate
    python benchmarks/train_throughput.py --device cuda --arch resnet18 --width 1 --epochs 2
    python benchmarks/train_throughput.py --device cuda --arch resnet50 --width 1 --compile
    python benchmarks/train_throughput.py --images 2560 --threads 1 --cpu-bf16
    python benchmarks/train_throughput.py --images 1280 --threads 1 --clock cpu \
        --minimizer sam --compile-ab 5

Prints images per second of both and their ratio, and the time of one epoch over 50,000 images.
The engine runs at precision ``auto`` (bf16 on CUDA and on CPUs with native bf16, fp32
elsewhere: the resolved precision is printed); ``--cpu-bf16`` also times it at ``bf16`` and
``fp32`` explicitly, the gain of bf16 where the CPU has it natively (AVX512-BF16, AMX).
``--compile-ab N`` times the engine eager and ``torch.compile``-d in N interleaved rounds (the
same data, minimizer and precision; each round times one epoch of each), so that a busy
machine's drift hits both alike, and prints each round's ratio and their median.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from flatness.data import load_dataset
from flatness.device import resolve_device
from flatness.models import build_model
from flatness.provenance import device_description
from flatness.training import TrainConfig
from flatness.training.engine import _Trainer
from flatness.training.runs import Run


class PILDataset(Dataset):
    """The conventional per-sample pipeline: PIL image -> transforms -> tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DataLoader's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


CLOCK = {"wall": time.perf_counter, "cpu": cpu_seconds}
clock = time.perf_counter  # set by --clock


def conventional_epoch(model, images, labels, device, batch_size, workers) -> float:
    loader = DataLoader(PILDataset(images, labels), batch_size=batch_size, shuffle=True,
                        num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    start = clock()
    seen = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()  # the usual per-step logging sync
        seen += y.numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    del loader  # its workers exit: their CPU time joins the children's
    return seen / (clock() - start)


def engine_epoch(trainer: _Trainer, epoch: int) -> float:
    start = clock()
    trainer._train_epoch(epoch)  # ends with the per-epoch sync of the metrics
    return len(trainer.train_data) / (clock() - start)


def throughput(subset, device: torch.device, *, arch: str = "resnet18", width: float = 0.25,
               batch: int = 128, epochs: int = 1, workers: int = 2, compile: bool = False,
               precisions: tuple[str, ...] = ("auto",)) -> dict:
    """Images per second of the conventional pipeline and of the engine at each precision."""
    torch.manual_seed(0)
    baseline = build_model(arch, width=width).to(device)
    conventional_epoch(baseline, subset.images[: batch * 4], subset.labels[: batch * 4],
                       device, batch, workers)  # warm-up
    base = max(conventional_epoch(baseline, subset.images, subset.labels, device, batch, workers)
               for _ in range(epochs))
    config = TrainConfig(arch=arch, width=width, train_subset=len(subset), eval_subset=None,
                         epochs=epochs + 1, batch_size=batch, decay_epochs=())
    out = {"conventional": base, "engine": {}, "precision": {}}
    for precision in precisions:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = _Trainer(dataclasses.replace(config, precision=precision), Run(Path(tmp)),
                               subset, subset.subset(min(512, len(subset)), 0), device,
                               compile=compile)
            engine_epoch(trainer, 1)  # warm-up (and compilation)
            out["engine"][precision] = max(engine_epoch(trainer, e + 2) for e in range(epochs))
            out["precision"][precision] = trainer.precision  # what it resolved to
    return out


def compile_ab(subset, device: torch.device, *, rounds: int, arch: str = "resnet18",
               width: float = 0.25, batch: int = 128, minimizer: str = "sgd") -> list[float]:
    """Images per second of the eager and the compiled engine, in ``rounds`` interleaved pairs:
    returns the compiled / eager ratio of each round."""
    config = TrainConfig(arch=arch, width=width, train_subset=len(subset), eval_subset=None,
                         epochs=rounds + 1, batch_size=batch, decay_epochs=(),
                         minimizer=minimizer)
    eval_set = subset.subset(min(512, len(subset)), 0)
    ratios = []
    with tempfile.TemporaryDirectory() as eager_dir, tempfile.TemporaryDirectory() as comp_dir:
        eager = _Trainer(config, Run(Path(eager_dir)), subset, eval_set, device, compile=False)
        compiled = _Trainer(config, Run(Path(comp_dir)), subset, eval_set, device, compile=True)
        engine_epoch(eager, 1)  # warm-up
        engine_epoch(compiled, 1)  # warm-up and compilation
        for r in range(rounds):
            a, b = engine_epoch(eager, r + 2), engine_epoch(compiled, r + 2)
            ratios.append(b / a)
            print(f"round {r + 1}: eager {a:7.1f}, compiled {b:7.1f} images/s, "
                  f"ratio {b / a:.2f}", flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=5000, help="training images per epoch")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (after a warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (baseline)")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the engine")
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="also time the engine at precision bf16 and fp32 explicitly")
    parser.add_argument("--compile-ab", type=int, default=0, metavar="N",
                        help="time the engine eager against compiled in N interleaved rounds")
    parser.add_argument("--minimizer", default="sgd",
                        help="the engine's minimizer with its default hyper-parameters "
                        "(--compile-ab only)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                        help="wall: elapsed time; cpu: CPU seconds of this process and of the "
                        "baseline's DataLoader workers (images per CPU-second: robust on a "
                        "shared machine with --threads 1)")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    train_set, _ = load_dataset("cifar10", args.data)
    subset = train_set.subset(args.images, 0)
    print(f"device: {device_description(device)}; {args.arch} width {args.width}; "
          f"{len(subset)} images, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"{args.clock} clock")
    if args.compile_ab:
        ratios = compile_ab(subset, device, rounds=args.compile_ab, arch=args.arch,
                            width=args.width, batch=args.batch, minimizer=args.minimizer)
        print(f"{args.minimizer}: compiled / eager, median of {len(ratios)} rounds: "
              f"{statistics.median(ratios):.2f}x")
        return
    precisions = ("auto", "bf16", "fp32") if args.cpu_bf16 else ("auto",)
    out = throughput(subset, device, arch=args.arch, width=args.width, batch=args.batch,
                     epochs=args.epochs, workers=args.workers, compile=args.compile,
                     precisions=precisions)
    base, mine = out["conventional"], out["engine"]["auto"]
    print(f"conventional (DataLoader+PIL, fp32, {args.workers} workers): {base:9.1f} images/s")
    print(f"flatness engine (precision auto = {out['precision']['auto']}):{mine:12.1f} images/s")
    print(f"ratio: {mine / base:.2f}x")
    print(f"epoch of 50,000 images: conventional {50000 / base:.1f} s, engine {50000 / mine:.1f} s")
    if args.cpu_bf16:
        bf16, fp32 = out["engine"]["bf16"], out["engine"]["fp32"]
        print(f"flatness engine at bf16: {bf16:9.1f} images/s, at fp32: {fp32:9.1f} images/s "
              f"(bf16 {bf16 / fp32:.2f}x fp32; fp32 {fp32 / base:.2f}x the conventional)")


if __name__ == "__main__":
    main()
