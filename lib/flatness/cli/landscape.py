"""``python -m flatness landscape``: loss landscape of a run (1-D/2-D slice or interpolation)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from flatness.cli._common import add_data_options, non_negative_int, positive_int
from flatness.errors import FlatnessError

NAME = "landscape"
HELP = ("train loss/accuracy along filter-normalised random directions around a checkpoint "
        "(--grid 51 or 51x51), or along the line to another checkpoint (--to / --to-epoch); "
        "prints the result file as the last line")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_options(parser)
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint (default: last)")
    parser.add_argument("--to", default=None, help="second run: interpolate from --run to it")
    parser.add_argument("--to-epoch", type=int, default=None,
                        help="second checkpoint (of --to, or of --run when --to is not given)")
    parser.add_argument("--grid", default="51x51",
                        help="points per axis: 51 (1-D) or 51x51 (2-D); a line uses the first")
    parser.add_argument("--range", default=None,
                        help="axis range lo:hi (default -1:1; interpolation -0.5:1.5)")
    parser.add_argument("--images", type=positive_int, default=1000,
                        help="training images evaluated")
    parser.add_argument("--test-images", type=non_negative_int, default=0,
                        help="also the test loss on N images")
    parser.add_argument("--batch", type=positive_int, default=500)
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="direction seed (2-D: seed and seed+1); also the image subset's")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--out", default=None,
                        help="result file or folder (default: <run>/landscape/)")


def _grid(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        sizes = ()
    if not 1 <= len(sizes) <= 2 or min(sizes) < 1:
        raise FlatnessError(f"--grid expects N or NxM (e.g. 51x51), got {text!r}")
    return sizes


def _range(text: str | None, default: tuple[float, float]) -> tuple[float, float]:
    if text is None:
        return default
    lo, sep, hi = text.partition(":")
    try:
        bounds = float(lo), float(hi)
    except ValueError:
        bounds = (0.0, 0.0)
    if not sep or not bounds[0] < bounds[1]:
        raise FlatnessError(f"--range expects lo:hi with lo < hi (e.g. -1:1), got {text!r}")
    return bounds


def run(args: argparse.Namespace) -> int:
    from flatness.results import write_result
    from flatness.sharpness import interpolate, landscape_1d, landscape_2d, random_direction
    from flatness.sharpness.over_training import run_images
    from flatness.training import Run

    source = Run.open(args.run)
    epoch = args.epoch if args.epoch is not None else source.config.epochs
    sizes = _grid(args.grid)
    images, labels = run_images(source, args.images, args.seed, args.data)
    test = {}
    if args.test_images:
        tx, ty = run_images(source, args.test_images, args.seed, args.data, split="test")
        test = {"test_images": tx, "test_labels": ty}
    model = source.load_model(epoch, "cpu")
    common = dict(batch_size=args.batch, device=args.device, amp=args.amp, **test)
    config = {"run": source.dir.name, "epoch": epoch, "grid": list(sizes), "seed": args.seed}
    if args.to is not None or args.to_epoch is not None:
        other = Run.open(args.to) if args.to is not None else source
        to_epoch = args.to_epoch if args.to_epoch is not None else other.config.epochs
        lo, hi = _range(args.range, (-0.5, 1.5))
        alphas = np.linspace(lo, hi, sizes[0])
        config.update(to_run=other.dir.name, to_epoch=to_epoch)
        result = interpolate(model, other.load_model(to_epoch, "cpu"), alphas, images, labels,
                             config=config, **common)
        name = f"interpolation-e{epoch}-to-{other.dir.name}-e{to_epoch}.json"
    else:
        lo, hi = _range(args.range, (-1.0, 1.0))
        axes = [np.linspace(lo, hi, n) for n in sizes]
        d1 = random_direction(model, args.seed)
        if len(sizes) == 1:
            result = landscape_1d(model, d1, axes[0], images, labels, config=config,
                                  seeds=[args.seed], **common)
        else:
            d2 = random_direction(model, args.seed + 1)
            result = landscape_2d(model, d1, d2, axes[0], axes[1], images, labels, config=config,
                                  seeds=[args.seed, args.seed + 1], **common)
        name = f"landscape-e{epoch}-{'x'.join(map(str, sizes))}-seed{args.seed}.json"
    result.data_copy = source.data_source
    out = Path(args.out) if args.out else source.dir / "landscape"
    path = out if out.suffix == ".json" else out / name
    write_result(path, result)
    loss = np.asarray(result.data["train_loss"])
    print(f"train loss: min {loss.min():.4g}, max {loss.max():.4g} over {loss.size} points "
          f"({result.provenance.get('wall_time_s', 0):.1f} s)")
    print(path)
    return 0
