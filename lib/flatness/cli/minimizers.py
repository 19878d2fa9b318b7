"""``python -m flatness minimizers``: the minimizer names, hyper-parameters and references."""

from __future__ import annotations

import argparse

from flatness.minimizers import MINIMIZERS

NAME = "minimizers"
HELP = "list the surrogate-training minimizers with their hyper-parameters and defaults"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="only these minimizers (default: all)")


def run(args: argparse.Namespace) -> int:
    from flatness.minimizers import get_minimizer_class

    classes = [get_minimizer_class(n) for n in args.names] or list(MINIMIZERS.values())
    for cls in classes:
        params = ", ".join(f"{k}={_show(v)}" for k, v in cls.hyperparameters.items()) or "-"
        print(f"{cls.name:<8} {params}")
        print(f"{'':<8} {cls.description} ({cls.passes:g} passes/step)")
        print(f"{'':<8} {cls.reference}")
    print("\nSet them with --rho R and --hp key=value; rho has no upper cap (l-SAM: rho >= 1).")
    return 0


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
