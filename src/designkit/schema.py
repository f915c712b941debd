"""Turn plain YAML/JSON values into frozen dataclasses, checking types at the boundary.

Every error names the file, the key path (``experiments[1].arms.x4.share``) and what was
expected. Dataclasses may define a ``_coerce(value)`` classmethod to accept a shorthand
form (for example a bare string for a tokenizer directory).
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from designkit.errors import InputError

T = TypeVar("T")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return getattr(tp, "__name__", str(tp))


def convert(tp: Any, value: Any, file: str | Path | None, path: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise an InputError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, file, path)
            except InputError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise InputError(file, path, f"expected {_describe(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is Literal:
        if value in get_args(tp):
            return value
    elif origin is list:
        (item_tp,) = get_args(tp) or (Any,)
        if isinstance(value, list):
            return [convert(item_tp, v, file, _join(path, i)) for i, v in enumerate(value)]
    elif origin is tuple:
        args = get_args(tp)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(convert(a, v, file, _join(path, i)) for i, (a, v) in enumerate(zip(args, value)))
        raise InputError(file, path, f"expected a list of {len(args)} values, got {value!r}")
    elif origin is dict or tp is dict:
        key_tp, val_tp = get_args(tp) or (str, Any)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise InputError(file, _join(path, str(k)), f"expected a string key, got {k!r}")
                out[k] = convert(val_tp, v, file, _join(path, k))
            return out
    elif dataclasses.is_dataclass(tp):
        return from_dict(tp, value, file, path)
    raise InputError(file, path, f"expected {_describe(tp)}, got {value!r}")


def from_dict(cls: type[T], value: Any, file: str | Path | None, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and missing required ones."""
    coerce = getattr(cls, "_coerce", None)
    if coerce is not None:
        value = coerce(value)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError(file, path or None, f"expected a mapping, got {value!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InputError(file, _join(path, unknown[0]), f"unknown key; expected one of {', '.join(sorted(fields))}")
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = convert(hints[name], value[name], file, _join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InputError(file, _join(path, name), "required key is missing")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """The inverse of from_dict for serialization: dataclasses and tuples to dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


__all__ = ["convert", "from_dict", "to_dict"]
