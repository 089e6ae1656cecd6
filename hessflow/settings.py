"""Typed settings in one style: frozen-free dataclasses built from mappings, checked once.

Every group of user settings in hessflow (the workflow config and its stages, executor profiles,
training specs, the level of theory) is a :mod:`dataclasses` dataclass whose fields carry their
type, default and, in ``metadata``, the checks and help text. :func:`from_mapping` builds one from
a user mapping (YAML, JSON, CLI options turned into a dict) and raises
:class:`~hessflow.errors.SettingsError` with one line that names the dotted field and the reason,
with a "did you mean" hint for a misspelt key. Why dataclasses and not pydantic: the standard
library suffices for flat, documented groups of scalars; messages stay in hessflow's one-line form;
no extra dependency rides along into every Parsl worker (docs/architecture.md).

Field metadata understood by :func:`from_mapping` (all optional)::

    dataclasses.field(default=2, metadata=meta("MPI ranks", minimum=1))

- ``help``: one line for docs and ``--help``;
- ``minimum`` / ``maximum``: inclusive bounds of a number;
- ``choices``: the allowed values;
- ``check``: ``f(where, value) -> value`` for anything else (raise :func:`settings_error`);
- ``unit``: the unit of the number, for documentation.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Callable, Iterable, Mapping

from .errors import SettingsError

__all__ = ["meta", "did_you_mean", "check_keys", "from_mapping", "settings_error", "to_mapping",
           "describe"]

_MISSING = dataclasses.MISSING


def meta(help: str = "", *, minimum=None, maximum=None, choices=None, check: Callable | None = None,
         unit: str = "") -> dict:
    """Field metadata for :func:`from_mapping` (see the module docstring)."""
    return {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices,
            "check": check, "unit": unit}


def settings_error(where: str, reason: str) -> SettingsError:
    """The one-line error for a bad setting: ``where: reason``."""
    return SettingsError(f"{where}: {reason}" if where else reason)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known word, else `` (known: a, b, c)``."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(word), known, n=1) or \
        [k for k in known if k.startswith(str(word)) or str(word).startswith(k)][:1]
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


def check_keys(mapping: Mapping, known: Iterable[str], where: str = ""):
    """Raise for the first key of ``mapping`` not in ``known``, naming it with a hint.

    ``where`` is the dotted prefix of the mapping (``"executor"``, ``"stages.train"``)."""
    known = list(known)
    unknown = [k for k in mapping if k not in known]
    if unknown:
        k = unknown[0]
        more = f"; also unknown: {', '.join(map(str, unknown[1:]))}" if len(unknown) > 1 else ""
        raise settings_error(_join(where, k), f"unknown key{did_you_mean(k, known)}{more}")


def _join(where: str, name) -> str:
    return f"{where}.{name}" if where else str(name)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


# annotation -> (accepted Python types, what the message says); bool is never a number here
_SCALARS = {bool: (bool, "true or false"), int: (int, "an integer"),
            float: ((int, float), "a number"), str: (str, "a string")}


def _coerce(where: str, tp, value):
    """Check ``value`` against the annotation ``tp``; return it (ints accepted for floats,
    lists for tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(where, arg, value)
            except SettingsError as exc:
                errors.append(exc)
        names = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise settings_error(where, f"expected {names}, got {type(value).__name__} {value!r}")
    if tp is Any:
        return value
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise settings_error(where, f"expected a list, got {type(value).__name__} {value!r}")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        item = args[0] if args else Any
        out = [_coerce(f"{where}[{i}]", item, v) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise settings_error(where, f"expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp in _SCALARS:
        accepted, what = _SCALARS[tp]
        if not isinstance(value, accepted) or (tp is not bool and isinstance(value, bool)):
            got = repr(value) if tp is bool else f"{type(value).__name__} {value!r}"
            raise settings_error(where, f"expected {what}, got {got}")
        return float(value) if tp is float else value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, where)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise settings_error(where, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _check_field(where: str, f: dataclasses.Field, value):
    m = f.metadata
    if value is None:
        return value
    if m.get("choices") is not None and value not in m["choices"]:
        allowed = " | ".join(map(str, m["choices"]))
        raise settings_error(where, f"{value!r} is not one of {allowed}"
                             + (did_you_mean(value, m["choices"]) if isinstance(value, str) else ""))
    if m.get("minimum") is not None and value < m["minimum"]:
        raise settings_error(where, f"must be >= {m['minimum']}, got {value!r}")
    if m.get("maximum") is not None and value > m["maximum"]:
        raise settings_error(where, f"must be <= {m['maximum']}, got {value!r}")
    if m.get("check") is not None:
        value = m["check"](where, value)
    return value


def from_mapping(cls, mapping: Mapping | None, where: str = "", **overrides):
    """Build the dataclass ``cls`` from ``mapping`` (None: all defaults), checking every field.

    Unknown keys, wrong types, values out of range or not among the choices raise
    :class:`SettingsError` with the dotted field name (``where`` is the prefix). ``overrides``
    are fields the caller sets itself (not user input: not type-checked against the mapping)."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise settings_error(where or cls.__name__,
                             f"expected a mapping, got {type(mapping).__name__} {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(mapping, [n for n in fields if n not in overrides], where)
    hints = typing.get_type_hints(cls)
    kwargs = dict(overrides)
    for name, f in fields.items():
        if name in overrides:
            continue
        field_where = _join(where, name)
        if name in mapping:
            value = _coerce(field_where, hints.get(name, Any), mapping[name])
        elif f.default is not _MISSING:
            value = f.default
        elif f.default_factory is not _MISSING:
            value = f.default_factory()
        else:
            raise settings_error(field_where, "required")
        kwargs[name] = _check_field(field_where, f, value)
    return cls(**kwargs)


def to_mapping(obj) -> dict:
    """The plain-data form of a settings dataclass (nested ones too): JSON/YAML-ready."""
    return dataclasses.asdict(obj)


def describe(cls) -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, help)`` per field of a settings dataclass, for docs and help."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else None)
        unit = f.metadata.get("unit", "")
        help_ = f.metadata.get("help", "") + (f" [{unit}]" if unit else "")
        rows.append((f.name, _type_name(hints.get(f.name, Any)), default, help_))
    return rows
