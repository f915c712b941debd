"""Turn plain YAML/JSON values into frozen dataclasses, checking types at the boundary.

Every error names the file, the key path (``experiments[1].arms.x4.share``) and what was
expected. Dataclasses may define a ``_coerce(value)`` classmethod to accept a shorthand
form (for example a bare string for a tokenizer directory).
"""

from __future__ import annotations

import dataclasses
import math
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from designkit.errors import InputError, quote

T = TypeVar("T")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Limits of a numeric field, declared with ``bounded(...)`` and checked by ``from_dict``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def violated(self, value: float) -> bool:
        return (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )

    def describe(self) -> str:
        parts = [f"{op} {_number(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)) if v is not None]
        return " and ".join(parts)


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None) -> Any:  # fmt: skip
    """A dataclass field whose (non-None) value ``from_dict`` checks against these limits."""
    return dataclasses.field(default=default, metadata={"bounds": Bounds(ge, gt, le, lt)})


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
        raise InputError(file, path, f"expected {_describe(tp)}, got {quote(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                raise InputError(file, path, f"expected an integer within 64 bits (|n| < 2**63), got {_number(value) if abs(value) < 10**30 else f'{value:.3g}'}")
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) > 1e300:
                raise InputError(file, path, "expected a finite number, got an integer beyond a float's range")
            if not math.isfinite(value):
                raise InputError(file, path, f"expected a finite number, got {quote(value)}")
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
        raise InputError(file, path, f"expected a list of {len(args)} values, got {quote(value)}")
    elif origin is dict or tp is dict:
        key_tp, val_tp = get_args(tp) or (str, Any)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise InputError(file, _join(path, str(k)), f"expected a string key, got {quote(k)}")
                out[k] = convert(val_tp, v, file, _join(path, k))
            return out
    elif dataclasses.is_dataclass(tp):
        return from_dict(tp, value, file, path)
    raise InputError(file, path, f"expected {_describe(tp)}, got {quote(value)}")


def from_dict(cls: type[T], value: Any, file: str | Path | None, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and missing required ones."""
    coerce = getattr(cls, "_coerce", None)
    if coerce is not None:
        value = coerce(value)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError(file, path or None, f"expected a mapping, got {quote(value)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InputError(file, _join(path, unknown[0]), f"unknown key; expected one of {', '.join(sorted(fields))}")
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = convert(hints[name], value[name], file, _join(path, name))
            bounds = field.metadata.get("bounds")
            number = kwargs[name]
            if bounds is not None and isinstance(number, (int, float)) and not isinstance(number, bool) and bounds.violated(number):
                raise InputError(file, _join(path, name), f"expected {'an integer' if isinstance(number, int) else 'a number'} {bounds.describe()}, got {_number(number)}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InputError(file, _join(path, name), f"expected {_describe(hints[name])} (a required key, missing)")
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


__all__ = ["Bounds", "bounded", "convert", "from_dict", "to_dict"]
