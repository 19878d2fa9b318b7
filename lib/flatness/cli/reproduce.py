"""``python -m flatness reproduce --scale S``: the whole study, resumable, with a summary."""

from __future__ import annotations

import argparse
import sys

from flatness.cli._common import (
    add_compile_option,
    add_data_options,
    add_scale_options,
    scale_from_args,
)

NAME = "reproduce"
HELP = "run every chapter's computation end to end (resumable), locally or on a Ray cluster"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scale_options(parser)
    add_data_options(parser)
    parser.add_argument("--chapters", default=None,
                        help="comma-separated chapter names (default: all)")
    parser.add_argument("--executor", default="local", choices=["local", "ray"],
                        help="local: in this process; ray: one Ray task per job")
    parser.add_argument("--workers", type=int, default=1,
                        help="local executor: run jobs side by side in this many processes, "
                             "each with cpu_count/N threads (or OMP_NUM_THREADS); default 1, "
                             "in this process")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument("--no-publish", action="store_true",
                        help="keep results in the cache instead of results/<scale>/")
    add_compile_option(parser)
    parser.add_argument("--plan", action="store_true",
                        help="run nothing: per chapter and kind, the jobs cached and to run, "
                             "the compute time the cached ones recorded, an estimate for the "
                             "rest, and (--workers N > 1) its wall time as N workers")


def run(args: argparse.Namespace) -> int:
    from flatness.study.context import StudySpec
    from flatness.study.plan import plan, plan_table, precision_note
    from flatness.study.reproduce import reproduce, summary_table

    names = [n.strip() for n in args.chapters.split(",")] if args.chapters else None
    scale = scale_from_args(args)
    spec = StudySpec.create(scale, args.data, args.device)
    if args.plan:
        planned = plan(spec, names)
        print(plan_table(planned, workers=args.workers if args.workers > 1 else None))
        note = precision_note(scale, spec, planned, names)
        if note:
            print(note)
        return 0
    # said before hours of compute: this CPU's precision does not resume a study stored at the other
    note = precision_note(scale, spec, names=names)
    if note:
        print(note, file=sys.stderr, flush=True)
    summaries = reproduce(scale, names=names, data=args.data, device=args.device,
                          executor=args.executor, address=args.address,
                          publish=not args.no_publish, compile=args.compile,
                          workers=args.workers)
    print(summary_table(summaries))
    return 0
