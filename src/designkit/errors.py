"""Errors that reach the user as one line and exit code 2."""

from __future__ import annotations

import reprlib
from pathlib import Path

QUOTE_LIMIT = 80
"""Characters of a user's value that an error message quotes at most."""

_repr = reprlib.Repr()
# bounded work as well as bounded output: a value expanded from YAML aliases can be huge
_repr.maxlevel, _repr.maxdict, _repr.maxlist, _repr.maxtuple, _repr.maxset = 3, 4, 6, 6, 6
_repr.maxstring, _repr.maxlong, _repr.maxother = QUOTE_LIMIT, 40, QUOTE_LIMIT


def clip(text: str) -> str:
    """``text`` on one line, cut to about ``QUOTE_LIMIT`` characters (names and reasons from files)."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…"


def quote(value: object) -> str:
    """``repr(value)`` for an error message, cut to about ``QUOTE_LIMIT`` characters."""
    return clip(_repr.repr(value))


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
    """Build the standard "expected X, got Y" error; Y is quoted with ``quote``."""
    return InputError(file, field, f"expected {what}, got {quote(got)}")
