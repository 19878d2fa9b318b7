"""``python -m flatness chapter NAME --scale S``: compute one chapter's result headless.

The heavy computation of a chapter (training, attacks, sharpness) runs here, e.g. on a GPU box;
the result is written to ``results/<scale>/<NAME>.json`` (``--no-publish``: cache only), which
the chapter notebook then renders without recomputing.
"""

from __future__ import annotations

import argparse

import yaml

from flatness.cli._common import add_compile_option, add_data_options, add_scale_options
from flatness.errors import FlatnessError
from flatness.study.chapters import MODULES

NAME = "chapter"
HELP = "compute one chapter's results (training, attacks, sharpness) and publish them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"{', '.join(MODULES)} (or 'list')")
    add_scale_options(parser)
    add_data_options(parser)
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="chapter parameter (YAML value)")
    parser.add_argument("--recompute", action="store_true", help="ignore cached results")
    parser.add_argument("--no-publish", action="store_true",
                        help="keep the result in the cache instead of results/<scale>/")
    add_compile_option(parser)
    parser.add_argument("--executor", default="local", choices=["local", "ray"])
    parser.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")


def parse_params(pairs: list[list[str]]) -> dict:
    params = {}
    for name, text in pairs:
        try:
            params[name] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FlatnessError(f"parameter {name}: cannot read {text!r} as YAML ({exc})") from None
    return params


def run(args: argparse.Namespace) -> int:
    from flatness.cli._common import scale_from_args
    from flatness.notebook import check_parameters
    from flatness.study import chapter_result, chapters, committed_path, get_chapter
    from flatness.study.analysis import claims_of

    if args.name == "list":
        for name, chapter in chapters().items():
            print(f"{name:18s} {chapter.title}  (notebooks/{chapter.notebook}.ipynb)")
        return 0
    chapter = get_chapter(args.name)
    scale = scale_from_args(args)
    params = parse_params(args.param)
    check_parameters(**params)  # the notebooks' checks: attack_steps >= 1, eps in (0, 1] ...
    result = chapter_result(chapter, scale, params, data=args.data,
                            device=args.device, recompute=args.recompute,
                            executor=args.executor, address=args.address,
                            publish=not args.no_publish, compile=args.compile)
    p = result.provenance
    print(f"chapter {chapter.name} at scale {result.scale}: {p.get('jobs')} jobs, "
          f"compute {p.get('compute_time_s')} s, device {p.get('device')}")
    for claim in claims_of(result):
        print(f"{claim.status:>17}: {claim.key}: {claim.summary()}")
    if not args.no_publish:
        print(committed_path(chapter.name, result.scale))
    return 0
