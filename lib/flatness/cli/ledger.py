"""``python -m flatness ledger --scale S``: record the cache's finished work in the ledger."""

from __future__ import annotations

import argparse

from flatness.cli._common import add_data_options, add_scale_options, scale_from_args

NAME = "ledger"
HELP = ("record the finished jobs of the study (and the target models' weights) in "
        "results/ledger/, so that a fresh checkout resumes from them once committed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scale_options(parser)
    add_data_options(parser)
    parser.add_argument("--chapters", default=None,
                        help="comma-separated chapter names (default: all), as for reproduce")


def run(args: argparse.Namespace) -> int:
    from flatness.study.context import StudySpec
    from flatness.study.record import record_outputs

    names = [n.strip() for n in args.chapters.split(",")] if args.chapters else None
    spec = StudySpec.create(scale_from_args(args), args.data, args.device)
    print(record_outputs(spec, names).line())
    return 0
