"""The one assertion every bad input must pass, and small builders for broken files.

``refused`` runs the CLI in-process and checks the promise of designkit's boundary: exit
code 2, exactly one stderr line ``designkit: error: FILE: KEY: expected …`` naming the
file and the key, no traceback, and not a byte written or changed under ``root`` (the
case's directory, which holds the user's own files next to every output).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tiny_designs import tiny_design

from designkit.cli import main

PREFIX = "designkit: error: "
MAX_LINE = 700  # two tmp paths and a reason; an echoed alias bomb or corpus would be far longer


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its sha256 (files), link target or ``dir``."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            tree[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            tree[rel] = "dir"
        else:
            tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


@dataclass(frozen=True)
class Refusal:
    code: int
    line: str
    message: str


def run_cli(argv: Sequence[Any], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(argv: Sequence[Any], capsys, root: Path, *, file: str | None, key: str | None) -> Refusal:
    """Run ``designkit ARGV`` and assert the one-line refusal naming ``file`` then ``key``."""
    before = snapshot(root)
    code, _, err = run_cli(argv, capsys)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    line = lines[0]
    assert line.startswith(PREFIX), line
    assert len(line) <= MAX_LINE, f"{len(line)} characters: {line[:300]}…"
    message = line[len(PREFIX) :]
    at = 0
    if file is not None:
        at = message.find(file)
        assert at >= 0, f"the message does not name the file {file!r}: {line}"
        at += len(file)
    if key is not None:
        found = message.find(key, at)
        assert found >= 0, f"the message does not name the key {key!r} (after the file): {line}"
    assert "expected" in message, line
    assert snapshot(root) == before, "a refused command wrote or changed files"
    return Refusal(code, line, message)


def edit_design(design: dict, fn: Callable[[dict], Any]) -> dict:
    design = copy.deepcopy(design)
    fn(design)
    return design


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: Sequence[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def rewrite_json(path: Path, fn: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    result = fn(data)
    path.write_text(json.dumps(data if result is None else result, indent=2), encoding="utf-8")


class Evil:
    """Unpickling this runs ``touch MARKER``: the payload of a malicious checkpoint."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


RUN_STEPS = 2  # steps of the suite's small run (conftest.small_run)


def checkpoint_dir(run: Path) -> Path:
    """The last checkpoint of the suite's small run."""
    return run / "checkpoints" / f"step-{RUN_STEPS:08d}"


def small_design(corpus: Path) -> dict:
    """A design that trains in a second: one canary experiment, 2 steps of 4 sequences."""
    design = tiny_design(corpus)
    design["name"] = "small"
    design["run"].update(steps=RUN_STEPS, global_batch=4, max_injected_fraction=0.5)
    design["run"]["training"] = {"learning_rate": 1e-3, "warmup_steps": 1, "checkpoints": [RUN_STEPS], "save_initial": False, "log_every": 1}
    design["experiments"] = [design["experiments"][1]]
    design["experiments"][0]["items"] = {"generate": {"n": 6, "length": 12}}
    design["experiments"][0]["arms"] = {"control": {"dose": 0, "share": 0.5}, "x1": {"dose": 1, "share": 0.5}}
    return design
