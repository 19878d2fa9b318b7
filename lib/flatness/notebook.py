"""Checking a chapter's parameters in the cell right after its ``parameters`` cell.

A notebook run by papermill receives its parameters as injected globals; a typo (an unknown
scale, minimizer or technique, ``rho < 0``, ``seeds="0"``) would otherwise fail deep inside a
training loop after minutes. :func:`check_parameters` validates the common parameters and
raises :class:`~flatness.errors.FlatnessError` with a one-line message, so the notebook stops at
its first cell. Names without a validator pass through unchanged (chapters have their own
parameters). Given the notebook's ``globals()``, it also refuses a parameter that papermill
injected but the chapter does not take (``-p rhoo 0.5``), which papermill only warns about.
"""

from __future__ import annotations

import ast
import functools
import importlib
import numbers
from collections.abc import Callable, Mapping, Sequence
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


def _rhos(value: Any) -> list[float] | dict[str, list[float]]:
    if isinstance(value, Mapping):  # a grid per minimizer (chapter 4)
        return {name: _rhos(grid) for name, grid in value.items()}
    values = _as_list("rhos", value, "0.05, 0.1")
    if not values:
        raise FlatnessError("rhos must be a non-empty list of numbers >= 0")
    return [_non_negative("rhos[]", v) for v in values]


def _eps(value: Any) -> float:
    eps = _non_negative("eps", value)
    if not 0 < eps <= 1:
        raise FlatnessError(f"eps must be in (0, 1] (pixels in [0, 1]), got {value!r} "
                            "(e.g. 4/255)")
    return eps


def _budgets(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise FlatnessError(f"target_eps must be a mapping dataset -> eps, got {value!r}; "
                            + _YAML_HINT.format(name="target_eps", example="d_r: 16/255")
                            .replace("[", "{").replace("]", "}"))
    return {name: _eps(eps) for name, eps in value.items()}


def _positive(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = _non_negative(name, value)
        if number == 0:
            raise FlatnessError(f"{name} must be > 0, got {value!r}")
        return number
    return check


def _positive_int(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise FlatnessError(f"{name} must be an integer >= 1, got {value!r}")
        return int(value)
    return check


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
    "fig3_epochs": _epochs,
    "landscape_epochs": _epochs,
    "target_eps": _budgets,
    "single_decay_seeds": _seeds,
    "baseline_seeds": _seeds,
    "sam_rho": functools.partial(_non_negative, "sam_rho"),
    "lsam_rho": functools.partial(_non_negative, "lsam_rho"),
    "sat_eps": _eps,
    "lgv_lr_factor": _positive("lgv_lr_factor"),
    **{name: _positive_int(name) for name in (
        "attack_steps", "robustness_images", "early_epoch", "sharpness_every",
        "landscape_grid", "sat_steps", "lgv_epochs", "lgv_models")},
    "minimizers": _names("minimizers", "flatness.minimizers", "MINIMIZERS", "sgd, sam"),
    "techniques": _names("techniques", "flatness.attacks", "TECHNIQUES", "mi, di"),
}


def check_parameters(namespace: Mapping[str, Any] | None = None, /, **params: Any
                     ) -> dict[str, Any]:
    """Validate a chapter's parameters; return them cleaned (floats, lists of ints ...).

    Call it right after the ``parameters`` cell, with every parameter the chapter takes::

        p = check_parameters(globals(), scale=scale, seeds=seeds, device=device, data=data,
                             recompute=recompute, rho=rho)

    Raises :class:`FlatnessError` naming the first bad parameter and how to fix it, or the
    parameters papermill injected into ``namespace`` that are not among ``params``.
    Names without a validator are returned unchanged, and so is ``None`` ("use the chapter's
    default") for every parameter but ``scale`` and ``recompute``.
    """
    if namespace is not None and (unknown := unknown_parameters(namespace, params)):
        raise FlatnessError(
            f"this chapter does not take parameter(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(params)}")
    return {name: VALIDATORS[name](value)
            if name in VALIDATORS and (value is not None or name in REQUIRED) else value
            for name, value in params.items()}


#: Parameters that have no default and must always be given a valid value.
REQUIRED = frozenset({"scale", "recompute"})


#: The first line of the cell papermill injects with the parameters it was given.
INJECTED_HEADER = "# Parameters\n"


def injected_names(history: Sequence[str]) -> set[str]:
    """Names assigned by papermill's injected cells among a kernel's inputs (IPython's ``In``)."""
    names: set[str] = set()
    for source in history:
        if not isinstance(source, str) or not source.startswith(INJECTED_HEADER):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                  for target in node.targets if isinstance(target, ast.Name)}
    return names


def unknown_parameters(namespace: Mapping[str, Any], declared: Mapping[str, Any]) -> list[str]:
    """Parameters papermill injected into ``namespace`` that the chapter does not declare.

    Only papermill's injected cells count (found in IPython's input history ``In``), so a live
    reader who re-runs the cell after defining other variables is never refused.
    """
    history = namespace.get("In")
    if not isinstance(history, Sequence) or isinstance(history, str):
        return []
    return sorted(injected_names(history) - set(declared))
