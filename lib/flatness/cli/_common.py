"""Options shared by several sub-commands (scale, data, device, output folder, compile), and
argument types that refuse bad values while parsing, before any data is read or model trained."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from flatness.scales import Scale, get_scale, parse_number, parse_overrides


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


def add_compile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the models being trained: same runs, same cache "
                        "(SAM steps 1.2x faster on one CPU thread; minutes to compile once per "
                        "process, cached on disk after)")


def scale_from_args(args: Any) -> Scale:
    return get_scale(args.scale, **parse_overrides(getattr(args, "set", [])))


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (a count of images, steps, epochs ...)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_number(text: str) -> float:
    """A number > 0; fractions such as 1/255 work."""
    try:
        value = parse_number(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0 (e.g. 0.5 or 1/255), got {text!r}")
    return value


def budget(text: str) -> float:
    """A perturbation budget in (0, 1] (pixels lie in [0, 1]); fractions such as 4/255 work."""
    value = positive_number(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a budget in (0, 1], e.g. 4/255, got {text!r}")
    return value
