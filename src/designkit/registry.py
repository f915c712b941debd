"""Named registries of plug-ins: experiment kinds, probe types, estimators.

One mechanism for all three open contracts (ARCHITECTURE.md, "three open registries"):

- **built-ins** call ``REGISTRY.register(cls)`` (or use it as a class decorator) where the
  registry is defined: ``designkit.kinds.KINDS`` for kinds, the engine's probe registry for
  probe types, ``designkit.analysis``'s estimator registry for estimators;
- **installed packages** declare entry points in the registry's group, loaded on first
  use through ``importlib.metadata.entry_points``::

      [project.entry-points."designkit.kinds"]
      my_kind = "mypkg.kinds:MyKind"

  (groups: ``designkit.kinds``, ``designkit.probes``, ``designkit.estimators``);
- **a design or plan may name an import path** ``module:attr`` wherever it names a
  registered thing (``kind: mypkg.kinds:MyKind``). ``get`` imports the module, which runs
  its code: a design that names a module is as trusted as that module.

A name that resolves nowhere, an import that fails, or an object of the wrong type is
refused with one ``InputError`` line naming the file and key it came from. Registering a
second, different object under a taken name is a programming error (``ValueError``).

To add a registry: ``PROBES = Registry("designkit.probes", "probe type", base=Probe)``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from designkit.errors import InputError

T = TypeVar("T")
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_import_path(name: str) -> bool:
    """Whether ``name`` is spelled ``module:attr`` (``module`` dotted, ``attr`` possibly dotted)."""
    return bool(IMPORT_PATH.match(name))


def import_object(path: str, *, file: str | Path | None = None, field: str | None = None) -> Any:
    """The object ``module:attr`` names, importing ``module`` (which runs its code).

    Raises ``InputError(file, field, ...)`` if the path is malformed, the module cannot be
    imported or lacks the attribute.
    """
    if not is_import_path(path):
        raise InputError(file, field, f"expected an import path module:attr, got {path!r}")
    module_name, attr = path.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(file, field, f"expected an importable module {module_name!r} ({_one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a user's module failing at import is bad input, told in one line
        raise InputError(file, field, f"expected module {module_name!r} to import cleanly, it raised {_one_line(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(file, field, f"expected module {module_name!r} to define {attr!r}") from None
    return obj


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class Registry(Generic[T]):
    """Name → plug-in, filled by ``register``, by entry points of ``group`` and by import paths.

    ``base`` (a class) is what every plug-in must subclass; None accepts any object.
    A registered object's name is the ``name`` given to ``register``, else its ``name``
    attribute.
    """

    def __init__(self, group: str, what: str, *, base: type | None = None):
        self.group = group
        self.what = what
        self.base = base
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = False

    # registering
    @overload
    def register(self, obj: T, name: str | None = None) -> T: ...
    @overload
    def register(self, obj: None = None, name: str | None = None) -> Callable[[T], T]: ...

    def register(self, obj: T | None = None, name: str | None = None) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name`` (default ``obj.name``); usable as a decorator."""
        if obj is None:
            return lambda o: self.register(o, name)
        key = name if name is not None else getattr(obj, "name", None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"a {self.what} needs a non-empty str name, got {key!r} for {obj!r}")
        if is_import_path(key):
            raise ValueError(f"a {self.what} name may not look like an import path, got {key!r}")
        self._check_type(obj, None, None, key)
        present = self._entries.get(key)
        if present is not None and present is not obj:
            raise ValueError(f"{self.what} {key!r} is already registered as {present!r}")
        self._entries[key] = obj
        return obj

    # looking up
    def get(self, name: str, *, file: str | Path | None = None, field: str | None = None) -> T:
        """The plug-in called ``name``: registered, from an entry point, or an import path."""
        if not isinstance(name, str):
            raise InputError(file, field, f"expected a {self.what} name, got {name!r}")
        if name in self._entries:
            return self._entries[name]
        if is_import_path(name):
            obj = import_object(name, file=file, field=field)
            self._check_type(obj, file, field, name)
            return obj
        # a miss looks at the installed entry points again: a package installed (or a path
        # added) after the first lookup must still be found
        self.load_entry_points(reload=self._entry_points_loaded)
        if name in self._entries:
            return self._entries[name]
        known = ", ".join(sorted(self._entries))
        choices = f"one of the {self.what}s {known}, or" if known else f"a registered {self.what} (none are) or"
        raise InputError(file, field, f"expected {choices} an import path module:attr, got {name!r}")

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._entries:
            return True
        self.load_entry_points(reload=self._entry_points_loaded)
        return name in self._entries

    def names(self) -> list[str]:
        """Every registered name, entry points included, sorted."""
        self.load_entry_points()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def load_entry_points(self, *, reload: bool = False) -> None:
        """Register every entry point of ``group`` (once; ``reload`` looks again).

        An entry point that fails to load, or loads the wrong type, is refused with an
        ``InputError`` naming its distribution: an installed plug-in is part of the setup.
        """
        if self._entry_points_loaded and not reload:
            return
        self._entry_points_loaded = True
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            if ep.name in self._entries and not reload:
                continue
            where = f"entry point {ep.name} = {ep.value}"
            dist = getattr(ep, "dist", None)
            origin = f"{dist.name} ({self.group})" if dist is not None else self.group
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - one line naming the plug-in, not a traceback
                raise InputError(origin, where, f"expected a loadable {self.what}, it raised {_one_line(exc)}") from None
            self._check_type(obj, origin, where, ep.name)
            present = self._entries.get(ep.name)
            if present is not None and present is not obj:
                raise InputError(origin, where, f"expected a new {self.what} name, {ep.name!r} is already {present!r}")
            self._entries[ep.name] = obj

    def _check_type(self, obj: Any, file, field, name: str) -> None:
        if self.base is None:
            return
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            detail = f"expected {name!r} to be a subclass of {self.base.__module__}.{self.base.__qualname__}, got {obj!r}"
            if file is None and field is None:
                raise ValueError(detail)
            raise InputError(file, field, detail)
