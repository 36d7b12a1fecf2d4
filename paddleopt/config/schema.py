"""Typed config sections: dataclasses checked field by field, unknown keys rejected.

Why not pydantic: the errors must name the config file, the dotted key path, what was expected
and the fix in one paragraph, and suggest the nearest key for a typo. A small validator over
dataclass type hints does that and keeps `import paddleopt` light.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from paddleopt.utils.errors import ConfigError

T = TypeVar("T")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


class _Invalid(Exception):
    def __init__(self, path: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.path, self.message, self.fix = path, message, fix


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:  # Optional[X]: X's own error (names the nested key) is the useful one
            return _convert(value, others[0], path)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except _Invalid as exc:
                errors.append(exc)
        raise _Invalid(path, f"expected {_type_name(tp)}, got {value!r}",
                       f"set '{path}' to {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _Invalid(path, f"{value!r} is not allowed{hint}",
                       f"set '{path}' to {_type_name(tp)}")
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Invalid(path, f"expected {_type_name(tp)}, got {value!r}",
                           f"write '{path}' as a YAML list, e.g. [1, 2]")
        (item_tp, *_) = get_args(tp) or (Any,)
        return [_convert(v, item_tp, _join(path, i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected {_type_name(tp)}, got {value!r}",
                           f"write '{path}' as a YAML mapping")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _convert(v, val_tp, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # .nan / .inf: no setting means that
                raise _Invalid(path, f"{value!r} is not a finite number",
                               f"set '{path}' to a finite number")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Invalid(path, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}",
                   f"set '{path}' to {_type_name(tp)}")


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking types and rejecting unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _Invalid(path or "<root>", f"expected a mapping, got {data!r}",
                       f"write '{path or 'the config'}' as a YAML mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"did you mean '{_join(path, close[0])}'?" if close else \
            f"allowed keys: {', '.join(sorted(fields))}"
        raise _Invalid(_join(path, str(key)), f"unknown key '{_join(path, str(key))}'",
                       f"remove or rename it; {hint}")
    kwargs = {}
    for name, field in fields.items():
        sub = _join(path, name)
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise _Invalid(sub, f"required key '{sub}' is missing",
                           f"add '{sub}: <{_type_name(hints[name])}>' to the config")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        problem = check()
        if problem:
            message, fix = problem if isinstance(problem, tuple) else (problem, "")
            raise _Invalid(path or "<root>", message, fix)
    return obj


def parse(cls: type[T], data: Any, path: str = "", source: str = "") -> T:
    """Like ``build`` but raises a ConfigError naming the file, key path and fix."""
    try:
        return build(cls, data, path)
    except _Invalid as exc:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}invalid config at '{exc.path}': {exc.message}.",
                          exc.fix) from None


def to_dict(obj: Any) -> Any:
    """Dataclass (or nested containers of them) -> plain YAML/JSON-able data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
