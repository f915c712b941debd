"""The test suite's own layout: shared helpers live in normal modules, never imported from conftest."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_from_a_conftest():
    pattern = re.compile(r"^\s*(from\s+\.*conftest\s+import|import\s+conftest)", re.MULTILINE)
    offenders = [str(p.relative_to(TESTS)) for p in sorted(TESTS.rglob("*.py")) if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == [], f"import shared helpers from a normal module (tests/tiny_designs.py, …), not conftest: {offenders}"
