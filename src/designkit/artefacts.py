"""Which directories are designkit's own, and the one rule for writing over them.

Each artefact directory type has a marker file holding a JSON object whose ``format``
names the type (docs/formats.md). ``--force`` may replace a directory only when it holds
the marker of the same type: nothing the user owns is ever deleted (issue 7: ``plan --out
mydocs --force`` deleted a folder of documents). Every command that writes a directory
calls ``check_output`` before it does any work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from designkit.errors import InputError


@dataclass(frozen=True)
class ArtefactType:
    name: str
    marker: str
    """The file that marks the directory as this type."""
    format_prefix: str
    """Its ``format`` starts with this (any version of the format)."""


TYPES = {
    t.name: t
    for t in (
        ArtefactType("plan", "plan.json", "designkit-plan/"),
        ArtefactType("corpus", "corpus.json", "designkit-corpus/"),
        ArtefactType("run", "run.json", "designkit-run/"),
        ArtefactType("report", "results.json", "designkit-report/"),
        ArtefactType("interference", "interference.json", "designkit-interference/"),
        ArtefactType("interference-report", "interference.json", "designkit-interference-report/"),
        ArtefactType("demo", "demo.json", "designkit-demo/"),
    )
}

DEMO_FORMAT = "designkit-demo/1"
DEMO_PARTS = {"plan": "plan", "run": "run", "report": "report"}
"""A demo dir's subdirectories and their types (``designkit demo`` writes them)."""


def _marker_format(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            data = json.loads(fh.read(1 << 26))  # markers are small; a huge one is not ours
    except (OSError, ValueError):
        return None
    value = data.get("format") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def is_artefact(directory: str | Path, type_name: str) -> bool:
    """Whether ``directory`` holds the marker of artefact type ``type_name``."""
    kind = TYPES[type_name]
    directory = Path(directory)
    marker = directory / kind.marker
    if not directory.is_dir() or directory.is_symlink() or not marker.is_file():
        return False
    found = _marker_format(marker)
    return found is not None and found.startswith(kind.format_prefix)


def kind_of(directory: str | Path) -> str | None:
    """The artefact type ``directory`` holds, or None for anything else."""
    return next((name for name in TYPES if is_artefact(directory, name)), None)


def _is_legacy_demo(directory: Path) -> bool:
    """A demo dir written before demo.json existed: only plan/run/report, each of its type."""
    children = list(directory.iterdir())
    return bool(children) and all(c.name in DEMO_PARTS and is_artefact(c, DEMO_PARTS[c.name]) for c in children)


def check_output(out: str | Path, type_name: str, *, force: bool, option: str | None = None) -> bool:
    """Whether ``out`` exists and will be replaced by the new artefact ``type_name``.

    A new or empty directory is fine. A non-empty one needs ``force`` and the marker of the
    same type; anything else (a file, the user's own folder, another artefact type) is an
    InputError, raised before any work is done.
    """
    kind = TYPES[type_name]
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(out, option, f"expected a directory for the {type_name} (new, or a designkit {type_name} to replace), found a file or link")
    if not out.exists():
        return False
    if not any(out.iterdir()):
        return True
    if not force:
        raise InputError(out, option, f"expected an empty or new {type_name} directory (use --force to replace a designkit {type_name})")
    if is_artefact(out, type_name) or (type_name == "demo" and _is_legacy_demo(out)):
        return True
    other = kind_of(out)
    found = f"it holds a designkit {other}" if other else f"it has no {kind.marker} of format {kind.format_prefix}*"
    raise InputError(out, option, f"expected a designkit {type_name} directory (with {kind.marker}) to replace; {found}, and --force never deletes other directories")


__all__ = ["DEMO_FORMAT", "TYPES", "check_output", "is_artefact", "kind_of"]
