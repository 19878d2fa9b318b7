"""Typed overrides of nested frozen dataclasses, addressed by dotted names, and their text form.

A scale (:mod:`flatness.scales`) is such a tree: ``--set epochs=40`` sets a field,
``--set minimizers.rhos.sam=0.05,0.3`` one entry of a nested mapping, and a JSON value
(``--set 'minimizers.rhos={"sam": [0.05]}'``) a whole list, mapping or section at once. Every
value, text or not, is read as the field's annotated type (``4/255`` for a float, comma lists
or JSON lists for a tuple, ``none``/``all`` for an optional field), so a typo is a one-line
:class:`~flatness.errors.FlatnessError` before anything runs. Leaf classes with a text form
(``from_text``/``to_text``, e.g. a model spec) are read and written through it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from fractions import Fraction
from typing import Any

from flatness.errors import FlatnessError

_NULLS = {"none", "all", "null"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class FrozenDict(dict):
    """A mapping that cannot change once made: a frozen dataclass's mapping field (hashable;
    changed only by :func:`override`, which builds a new one)."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this mapping is read-only; override the field instead")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (dict(self),)


def parse_number(text: str | float | int) -> float:
    """Parse ``0.5``, ``4/255`` or ``8e-3`` into a float (fractions are common for eps)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"not a number: {text!r}")
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a number: {text!r}") from None


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their annotated types (resolved once: annotations are text)."""
    return typing.get_type_hints(cls)


def is_section(value: Any) -> bool:
    """Whether ``value`` is a nested dataclass addressed field by field (not a text leaf)."""
    return (dataclasses.is_dataclass(value) and not isinstance(value, type)
            and not hasattr(value, "from_text"))


def override(obj: Any, name: str, value: Any, what: str = "field") -> Any:
    """A copy of the frozen dataclass ``obj`` with the field at dotted ``name`` set to
    ``value``, read as that field's type (``what`` names the fields in errors)."""
    return _set(obj, name.split("."), value, name, what)


def _set(obj: Any, path: list[str], value: Any, name: str, what: str) -> Any:
    hints = field_types(type(obj))
    head, rest = path[0], path[1:]
    if head not in hints:
        where = name.rpartition(".")[0]
        scope = f" of {where}" if where else ""
        raise FlatnessError(f"unknown {what} {name!r}; known fields{scope}: "
                            f"{', '.join(sorted(hints))}")
    current = getattr(obj, head)
    if rest:
        new = _set_inside(hints[head], current, rest, value, name, what)
    elif is_section(current):
        new = _patch(current, value, name, what)
    else:
        new = coerce(hints[head], value, name, what)
    return dataclasses.replace(obj, **{head: new})


def _set_inside(hint: Any, current: Any, path: list[str], value: Any, name: str, what: str
                ) -> Any:
    """``current`` (a section or a mapping) with the entry at ``path`` set to ``value``."""
    if is_section(current):
        return _set(current, path, value, name, what)
    if typing.get_origin(hint) is dict and isinstance(current, dict):
        element = typing.get_args(hint)[1]
        key, rest = path[0], path[1:]
        if not rest:
            return FrozenDict({**current, key: coerce(element, value, name, what)})
        if key not in current:
            raise FlatnessError(f"{what} {name}: {key!r} is not set; set it whole first")
        return FrozenDict({**current,
                           key: _set_inside(element, current[key], rest, value, name, what)})
    parent = name.rpartition(".")[0]
    raise FlatnessError(f"{what} {name}: {parent} has no fields to set with a dot")


def _patch(section: Any, value: Any, name: str, what: str) -> Any:
    """A section updated from a mapping of its fields (a JSON object when given as text)."""
    if type(value) is type(section):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict):
        raise FlatnessError(f"{what} {name}: expected a JSON object of its fields "
                            f"({', '.join(sorted(field_types(type(section))))})")
    for key, item in value.items():
        section = _set(section, [str(key)], item, f"{name}.{key}", what)
    return section


def coerce(hint: Any, value: Any, name: str, what: str = "field") -> Any:
    """``value`` (text or not) read as the annotated type ``hint``, or a one-line error."""
    try:
        return _convert(hint, value)
    except (ValueError, TypeError) as exc:
        raise FlatnessError(f"{what} {name}: cannot read {value!r} ({exc})") from None


def _convert(hint: Any, value: Any) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        base = next(a for a in args if a is not type(None))
        if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS):
            return None  # an optional setting: "none", or "all" of the images
        return _convert(base, value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(_convert(args[0], v) for v in _sequence(value))
    if origin is dict:
        if isinstance(value, str):
            value = _json(value)
        if not isinstance(value, dict):
            raise TypeError("expected a mapping, e.g. a JSON object")
        return FrozenDict({_convert(args[0], k): _convert(args[1], v) for k, v in value.items()})
    return _scalar(hint, value)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None


def _sequence(value: Any) -> list[Any]:
    """A list from a JSON list, a comma list (``"3,4"``; empty: none) or a list or tuple."""
    if isinstance(value, str):
        if value.strip().startswith("["):
            value = _json(value)
        else:
            return [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise TypeError("expected a list")
    return list(value)


def _scalar(kind: Any, value: Any) -> Any:
    if kind is str and isinstance(value, str):
        return value.strip()
    if isinstance(kind, type) and isinstance(value, kind) and not (
            kind is int and isinstance(value, bool)):
        return value
    if hasattr(kind, "from_text"):
        if isinstance(value, str):
            return kind.from_text(value)
        if isinstance(value, dict):
            return kind(**value)
    elif kind is bool and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    elif kind is int and isinstance(value, str):
        return int(value)
    elif kind is float and not isinstance(value, bool):
        return parse_number(value)
    raise TypeError(f"expected {getattr(kind, '__name__', kind)}")


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every settable value of ``obj`` by dotted name (sections flattened, the rest whole)."""
    found: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if is_section(value):
            found.update(leaves(value, f"{prefix}{f.name}."))
        else:
            found[f"{prefix}{f.name}"] = value
    return found


def format_value(value: Any) -> str:
    """A value as the text :func:`override` reads back (``--set`` syntax, no ``;``)."""
    if hasattr(value, "to_text"):
        return value.to_text()
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=_json_leaf)
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json_leaf(value: Any) -> Any:
    if hasattr(value, "to_text"):
        return value.to_text()
    raise TypeError(f"cannot write {value!r} as JSON")
