"""The files in the paper's formats that loader tests run over: our own invented fixtures
(``tests/data/paper_formats/``, always there) plus the real files of
``../shared/data/paper-formats/`` where a checkout has them. A clean clone runs every test on
the fixtures alone, so nothing skips."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "data" / "paper_formats"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-formats"

_FORMATS = {
    "olmes_text": ("olmes_text_sample.jsonl", "olmes_*.jsonl"),
    "olmes_mc": ("olmes_mc_sample.jsonl", None),
    "fictional_knowledge": ("fictional_knowledge_sample.jsonl", "fictional_knowledge_*.jsonl"),
}


def paper_format_files(fmt: str) -> list[Path]:
    """Every file of format ``fmt``: the fixture first, then the shared real files present."""
    fixture, shared_glob = _FORMATS[fmt]
    shared = sorted(SHARED.glob(shared_glob)) if shared_glob and SHARED.is_dir() else []
    return [FIXTURES / fixture, *shared]


def paper_format_params(fmt: str) -> list:
    """``pytest.param`` per file, with the file name as the test id."""
    return [pytest.param(path, id=f"{'fixture' if path.parent == FIXTURES else 'shared'}-{path.stem}") for path in paper_format_files(fmt)]
