"""sha256 of large files, computed once and reused while the files are unchanged.

A continual-pretraining checkpoint (many GB) or a 210B-token corpus (hundreds of GB) is
hashed at plan time and again at train time. Re-reading it each time costs minutes to
hours, so a digest is remembered in ``$DESIGNKIT_HOME/hash-cache.json`` under the files'
absolute paths, sizes and modification times (ns): an edit, a copy elsewhere or a
replaced file changes the key and is hashed afresh. The cache is an optimisation only:
an unreadable cache is ignored and an unwritable one is not written, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from designkit import atomic_files

CACHE_FILE = "hash-cache.json"
MAX_ENTRIES = 4096
"""Oldest entries are dropped beyond this (a few hundred bytes each)."""
_BLOCK = 1 << 22


def designkit_home() -> Path:
    """designkit's cache dir (``$DESIGNKIT_HOME``, default ``~/.cache/designkit``)."""
    return Path(os.environ.get("DESIGNKIT_HOME", Path.home() / ".cache" / "designkit"))


def digest_files(paths: Iterable[Path]) -> str:
    """sha256 over the concatenated bytes of ``paths`` (read in 4 MiB blocks)."""
    digest = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def _key(paths: Sequence[Path]) -> str:
    parts = []
    for path in paths:
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return json.dumps(parts, separators=(",", ":"))


def _read_cache(file: Path) -> dict[str, str]:
    try:
        cache = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in cache.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(cache, dict) else {}


def _store(key: str, digest: str) -> None:
    file = designkit_home() / CACHE_FILE
    cache = _read_cache(file)
    cache.pop(key, None)  # re-inserted last: the newest entries survive trimming
    cache[key] = digest
    for old in list(cache)[: max(0, len(cache) - MAX_ENTRIES)]:
        del cache[old]
    try:
        atomic_files.write_text(file, json.dumps(cache, indent=0) + "\n")  # insertion order kept: oldest first
    except OSError:
        pass  # a read-only home only costs a re-hash next time


def remember(paths: Sequence[str | Path], digest: str) -> None:
    """Record ``digest`` for ``paths`` as they are now (for a writer that hashed them while writing)."""
    _store(_key([Path(p) for p in paths]), digest)


def sha256_files(paths: Sequence[str | Path]) -> str:
    """sha256 over the concatenated bytes of ``paths``, from the cache while their size and mtime hold."""
    paths = [Path(p) for p in paths]
    key = _key(paths)  # taken before reading: a file changed meanwhile no longer matches it
    cached = _read_cache(designkit_home() / CACHE_FILE).get(key)
    if cached is not None:
        return cached
    digest = digest_files(paths)
    _store(key, digest)
    return digest


def sha256_file(path: str | Path) -> str:
    """sha256 of one file, from the cache while its size and mtime hold."""
    return sha256_files([path])
