"""The built-in corpus ``builtin:stdlib-docs``: docstrings of the installed standard library.

About 2 MB of real English technical prose that exists on every machine with Python, so the
demo and the tests never download anything. One document per module: its docstring, then
the docstrings of its classes and functions in source order, plus one document per
``pydoc_data.topics`` entry.
"""

from __future__ import annotations

import ast
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

BUILTIN_NAME = "stdlib-docs"
# Test suites are full of terse fixtures, and vendored third-party code is not stdlib prose.
_SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})


def _module_docstrings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc.split()) >= 3:
                docs.append(doc)
    return docs


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_stdlib_documents(root: Path | None = None) -> Iterator[str]:
    """Yield the corpus documents in a fixed order (sorted paths, then topics by key)."""
    root = root or stdlib_root()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                source = Path(dirpath, name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            docs = _module_docstrings(source)
            if docs:
                yield "\n\n".join(docs)
    import pydoc_data.topics

    for key in sorted(pydoc_data.topics.topics):
        text = pydoc_data.topics.topics[key].strip()
        if text:
            yield text


def write_jsonl(path: Path, max_documents: int | None = None) -> Path:
    """Write the first ``max_documents`` documents as ``{"text": …}`` lines: a small real corpus
    for tests and benchmarks that is still prepared like any user file."""
    import json

    with Path(path).open("w", encoding="utf-8") as fh:
        for i, doc in enumerate(iter_stdlib_documents()):
            if max_documents is not None and i >= max_documents:
                break
            fh.write(json.dumps({"text": doc}) + "\n")
    return Path(path)
