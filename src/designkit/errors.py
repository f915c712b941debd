"""Errors that reach the user as one line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: a design, a plan, a corpus or a run directory.

    The message names the file, the field (a key path such as
    ``experiments[1].arms.x4.share``) and what was expected, so the CLI can print it
    as a single line and exit with code 2.
    """

    exit_code = 2

    def __init__(self, file: str | Path | None, field: str | None, message: str):
        self.file = str(file) if file is not None else None
        self.field = field
        self.detail = message
        parts = [p for p in (self.file, self.field) if p]
        # one line whatever the user typed: a key or value with a newline must not break it
        super().__init__(": ".join([*parts, message]).replace("\r", "\\r").replace("\n", "\\n"))


def expected(file: str | Path | None, field: str | None, what: str, got: object) -> InputError:
    """Build the standard "expected X, got Y" error."""
    return InputError(file, field, f"expected {what}, got {got!r}")
