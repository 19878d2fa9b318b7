"""Options shared by several sub-commands (scale, data, device, output folder)."""

from __future__ import annotations

import argparse
from typing import Any

from flatness.scales import Scale, get_scale, parse_overrides


def add_scale_options(parser: argparse.ArgumentParser, default: str = "smoke") -> None:
    parser.add_argument("--scale", default=default, help="smoke, cpu, gpu or paper")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", default=[],
                        help="override one field of the scale's design (repeatable), e.g. "
                        "--set epochs=40, a nested one by dotted name: "
                        "--set minimizers.rhos.sam=0.05,0.3 (lists and mappings also as JSON)")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 location: image-folder tree, its .tar.gz, or a folder for "
                        "the official archive (default: $FLATNESS_DATA, else torchvision's cache)")
    parser.add_argument("--device", default=None, help="cuda, cpu, cuda:1 ... (default: best)")


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help="where to write runs or results (default: the cache directory)")


def scale_from_args(args: Any) -> Scale:
    return get_scale(args.scale, **parse_overrides(getattr(args, "set", [])))
