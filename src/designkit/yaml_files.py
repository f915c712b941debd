"""The one reader of YAML files a user hands designkit: designs and checkpoints' ``model_config.yaml``.

YAML is read as data only (``yaml.SafeLoader``: no Python objects, no code). A file that is
not valid YAML is one ``InputError`` naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from designkit.errors import InputError


def load(path: str | Path, *, what: str = "a YAML file") -> Any:
    """The data in the YAML file ``path``; InputError if it is missing, unreadable or not YAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, None, f"expected {what}, found no file") from None
    except OSError as exc:
        raise InputError(path, None, f"expected {what} that can be read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise InputError(path, where, f"expected valid YAML ({getattr(exc, 'problem', None) or exc})") from None
