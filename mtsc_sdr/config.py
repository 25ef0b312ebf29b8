"""Typed configuration: YAML (or dicts) in, validated dataclasses out.

Every error names the offending field with its full dotted path, e.g.
``channel.fading.k_factor_db: expected a number, got 'high'``.

Configuration classes are plain ``@dataclass`` types whose fields have simple annotations
(``int``, ``float``, ``str``, ``bool``, ``Optional[...]``, ``list[...]``, ``tuple[...]``, a nested dataclass,
or a ``Literal[...]`` of allowed strings). A class may define ``validate(self, path)`` for range
checks; it raises :class:`ConfigError` through :func:`check`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def check(condition: bool, field: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``field`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(field, message)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


#: scalar field type -> (Python types a value may have, what an error says is expected, conversion)
_SCALARS: dict[type, tuple[tuple[type, ...], str, Any]] = {
    bool: ((bool,), "true or false", bool),
    int: ((int,), "an integer", int),
    float: ((int, float), "a number", float),
    str: ((str,), "a string", str),
    Path: ((str, Path), "a path", Path),
}


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: report X's own error
            return _coerce(value, real[0], path)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(path, f"does not match any of {[getattr(a, '__name__', str(a)) for a in args]}: "
                          + "; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(path, f"expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(path, f"expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp in _SCALARS:
        accepted, expected, convert = _SCALARS[tp]
        # YAML true/false are Python bools, which are also ints: only a bool field takes them
        if not isinstance(value, accepted) or (isinstance(value, bool) and tp is not bool):
            raise ConfigError(path, f"expected {expected}, got {value!r}")
        try:
            return convert(value)
        except OverflowError:  # an integer beyond a float's range (YAML reads 1e999 as inf, 10**400 as an int)
            raise ConfigError(path, f"{value!r:.40} is out of range for {expected}") from None
    raise TypeError(f"config type {tp!r} at {path} is not supported")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating names, types and (via ``validate``) ranges."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be numbers, dates, ...
    if unknown:
        raise ConfigError(_join(path, str(unknown[0])), f"unknown field (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        fpath = _join(path, name)
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], fpath)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(fpath, "required field is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(path)
    return obj


def yaml_loader():
    """PyYAML's SafeLoader, but reading ``1e6`` and ``1.0e6`` as floats (YAML 1.2), not strings."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


#: What PyYAML's safe loading raises on malformed text: YAMLError, and also ValueError (a date that
#: does not exist, ``2025-13-45``) and RecursionError (nesting deeper than Python's stack).
YAML_ERRORS = (yaml.YAMLError, ValueError, RecursionError)


def read_yaml(file: str | Path) -> Any:
    """The parsed content of YAML ``file`` (:func:`yaml_loader`: safe, YAML 1.2 floats); an
    unreadable or malformed file raises :class:`ConfigError` naming it."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=yaml_loader())  # safe: SafeLoader subclass
    except YAML_ERRORS as exc:
        raise ConfigError("", f"{file} is not valid YAML: {str(exc)[:300]}") from None


def load_yaml(cls: type[T], file: str | Path, section: str | None = None) -> T:
    """Read YAML ``file`` (optionally one top-level ``section``) into dataclass ``cls``."""
    data = read_yaml(file)
    if section is not None:
        if not isinstance(data, dict) or section not in data:
            raise ConfigError(section, f"section missing in {file}")
        data = data[section]
    return from_dict(cls, data, section or "")


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain JSON/YAML-friendly structures."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
