"""``python -m flatness targets``: train (or reuse) the scale's target zoo and list it."""

from __future__ import annotations

import argparse

from flatness.cli._common import add_data_options, add_scale_options, scale_from_args

NAME = "targets"
HELP = "train or reuse the scale's target models; prints name, test accuracy and run directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scale_options(parser)
    add_data_options(parser)
    parser.add_argument("--runs", default=None,
                        help="folder of training runs (default: the cache's runs folder)")


def run(args: argparse.Namespace) -> int:
    from flatness.study.targets import load_targets
    from flatness.training import Run

    targets = load_targets(scale_from_args(args), device=args.device, data=args.data,
                           out=args.runs)
    width = max(len(n) for n in targets.names) if targets.names else 6
    print(f"{'target':<{width}}  test acc  run")
    for name, run_dir in zip(targets.names, targets.run_dirs):
        rows = Run.open(run_dir).metrics()
        acc = rows[-1].get("test_acc", float("nan")) if rows else float("nan")
        print(f"{name:<{width}}  {acc:8.4f}  {run_dir}")
    return 0
