"""Checking a chapter's parameters in the cell right after its ``parameters`` cell.

A notebook run by papermill receives its parameters as injected globals; a typo (an unknown
scale, minimizer or technique, ``rho < 0``, ``seeds="0"``) would otherwise fail deep inside a
training loop after minutes. :func:`check_parameters` validates the common parameters and
raises :class:`~flatness.errors.FlatnessError` with a one-line message, so the notebook stops at
its first cell. Unknown names pass through unchanged (chapters have their own parameters).
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from flatness.errors import FlatnessError
from flatness.scales import SCALES, get_scale, parse_number

_YAML_HINT = "with papermill, pass lists as YAML: -y \"{name}: [{example}]\""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_list(name: str, value: Any, example: str) -> list[Any]:
    if isinstance(value, str):
        raise FlatnessError(
            f"{name} must be a list, got the string {value!r}; " + _YAML_HINT.format(
                name=name, example=example))
    if not isinstance(value, Sequence):
        raise FlatnessError(f"{name} must be a list, got {type(value).__name__} {value!r}")
    return list(value)


def _scale(value: Any) -> str:
    """A scale's name, ``auto``, or a name with overrides of its fields (any of the study's
    design, nested ones by dotted name): ``"cpu[lsam_rho=0.2;hessian.trace_samples=20]"``."""
    if isinstance(value, str) and "[" in value:
        get_scale(value)  # a one-line error for an unknown field or an unreadable value
        return value
    if not isinstance(value, str) or (value not in SCALES and value != "auto"):
        raise FlatnessError(
            f"unknown scale {value!r}; choose one of: auto, {', '.join(SCALES)} (with "
            f"overrides: cpu[FIELD=VALUE;...])")
    return value


def _seeds(value: Any) -> list[int] | None:
    if value is None:
        return None
    seeds = _as_list("seeds", value, "0, 1")
    bad = [s for s in seeds if not isinstance(s, numbers.Integral) or isinstance(s, bool)]
    if not seeds or bad:
        raise FlatnessError(f"seeds must be a non-empty list of integers, got {value!r}")
    if len(set(seeds)) != len(seeds):
        raise FlatnessError(f"seeds must be distinct, got {value!r}")
    return [int(s) for s in seeds]


def _optional_str(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise FlatnessError(f"{name} must be a string or None, got {value!r}")
        return value
    return check


def _bool(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise FlatnessError(f"{name} must be True or False, got {value!r}")
        return value
    return check


def _non_negative(name: str, value: Any) -> float:
    try:
        number = parse_number(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if not _is_number(number) or number != number:  # NaN
        raise FlatnessError(f"{name} must be a number >= 0, got {value!r}")
    if number < 0:
        raise FlatnessError(f"{name} must be >= 0, got {value!r}")
    return float(number)


def _rho(value: Any) -> float:
    return _non_negative("rho", value)


def _rhos(value: Any) -> list[float]:
    values = _as_list("rhos", value, "0.05, 0.1")
    if not values:
        raise FlatnessError("rhos must be a non-empty list of numbers >= 0")
    return [_non_negative("rhos[]", v) for v in values]


def _eps(value: Any) -> float:
    eps = _non_negative("eps", value)
    if eps == 0:
        raise FlatnessError(f"eps must be > 0, got {value!r} (e.g. 4/255)")
    return eps


def _epochs(value: Any) -> int | list[int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    values = _as_list("epochs", value, "10, 20") if not isinstance(value, numbers.Number) else None
    if values is None or any(
            not isinstance(e, numbers.Integral) or isinstance(e, bool) or e < 0 for e in values):
        raise FlatnessError(f"epochs must be an integer >= 0 or a list of them, got {value!r}")
    return [int(e) for e in values]


def _registry(module: str, attribute: str) -> dict[str, Any] | None:
    """A name registry of another sub-package, looked up at call time (None if absent)."""
    for candidate in (module, f"{module}.techniques"):
        try:
            mod = importlib.import_module(candidate)
        except ImportError:
            continue
        if hasattr(mod, attribute):
            return getattr(mod, attribute)
    return None


def _names(name: str, module: str, attribute: str, example: str) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        values = _as_list(name, value, example)
        bad_type = [v for v in values if not isinstance(v, str)]
        if bad_type:
            raise FlatnessError(f"{name} must be a list of names, got {value!r}")
        known = _registry(module, attribute)
        if known is None:
            raise FlatnessError(f"cannot check {name}: {module}.{attribute} is not available")
        unknown = [v for v in values if v not in known]
        if unknown:
            raise FlatnessError(
                f"unknown {name[:-1]} {', '.join(map(repr, unknown))}; "
                f"choose among: {', '.join(known)}")
        return values
    return check


#: Validators of the common chapter parameters: name -> function returning the clean value.
VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "scale": _scale,
    "seeds": _seeds,
    "device": _optional_str("device"),
    "data": _optional_str("data"),
    "recompute": _bool("recompute"),
    "rho": _rho,
    "rhos": _rhos,
    "eps": _eps,
    "epochs": _epochs,
    "minimizers": _names("minimizers", "flatness.minimizers", "MINIMIZERS", "sgd, sam"),
    "techniques": _names("techniques", "flatness.attacks", "TECHNIQUES", "mi, di"),
}


def check_parameters(**params: Any) -> dict[str, Any]:
    """Validate a chapter's parameters; return them cleaned (floats, lists of ints ...).

    Call it right after the ``parameters`` cell::

        p = check_parameters(scale=scale, seeds=seeds, device=device, data=data,
                             recompute=recompute, rho=rho)

    Raises :class:`FlatnessError` naming the first bad parameter and how to fix it.
    Names without a validator are returned unchanged, and so is ``None`` ("use the chapter's
    default") for every parameter but ``scale`` and ``recompute``.
    """
    return {name: VALIDATORS[name](value)
            if name in VALIDATORS and (value is not None or name in REQUIRED) else value
            for name, value in params.items()}


#: Parameters that have no default and must always be given a valid value.
REQUIRED = frozenset({"scale", "recompute"})
