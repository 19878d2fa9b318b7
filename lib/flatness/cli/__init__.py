"""Command line: ``python -m flatness <command> ...``.

Each sub-command is a module in this package defining ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; modules are discovered automatically, so
adding a command never touches this file. A :class:`~flatness.errors.FlatnessError` becomes a
one-line ``error: ...`` message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from flatness.errors import FlatnessError


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m flatness",
        description="Flatness and adversarial transferability: train surrogates with "
        "sharpness-aware minimizers, attack target zoos, measure sharpness, build the book.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


#: The longest error message printed whole; longer ones keep their start and end.
MAX_MESSAGE = 2000


def one_line(message: str) -> str:
    """A message on one line (a wrapped message from a library must not spill over lines)."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    if len(text) <= MAX_MESSAGE:
        return text
    half = MAX_MESSAGE // 2
    return f"{text[:half]} ... {text[-half:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except FlatnessError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is cached; run the same command to resume",
              file=sys.stderr)
        return 130
