"""Atomic writes: write into a temporary sibling, fsync, then rename over the target.

A crash leaves either the old file or the new one, never half of either. Directories are
built the same way: fill a temporary sibling directory, then rename it into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from designkit.errors import InputError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, fixed indentation, trailing newline (byte-stable)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=True) + "\n"


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, dumps_json(obj))


def check_output_dir(out: str | Path, option: str = "--out") -> None:
    """Refuse, before any work, an output directory that is a file or cannot be created.

    The directory is built as a temporary sibling, so the test is creating (and removing)
    one there: the nearest existing ancestor of ``out``'s parent must take a new directory.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, option, "expected a directory (new or designkit's own), found a file")
    ancestor = out.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(out, option, f"expected a location under a directory, {ancestor} is a file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".designkit-write-check-", dir=ancestor))
    except OSError as exc:
        raise InputError(out, option, f"expected a location designkit can write ({exc.strerror or exc} in {ancestor})") from None


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it takes ``target``'s place.

    With ``replace=True`` an existing ``target`` is swapped out only after the new one is
    complete, so an error part-way leaves the old directory untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise FileExistsError(target)
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
