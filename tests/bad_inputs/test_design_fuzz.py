"""Hypothesis over the design schema: random mutations of a valid design never give a traceback.

Each mutated design is either accepted by the design reader (``parse_design``, which also
resolves the model config through litgpt) or refused with ``InputError``: one line naming
the file, bounded in length. Validation only: nothing is planned or trained.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tiny_designs import tiny_design

from designkit.design import Design, load_design, parse_design
from designkit.errors import InputError

MAX_MESSAGE = 600

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**63, -(2**63) - 1, 10**30, 3]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, 5e-324, 1.5]),
    st.text(max_size=12),
    st.sampled_from(["", "\n", "tiny\n", "X" * 300, "builtin:stdlib-docs", "ünïcödé", "../../etc", "nan"]),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.recursive(st.integers() | st.text(max_size=4), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += _paths(value, (*prefix, i))
    return paths


def _apply(design: dict, path: tuple, op: str, value: Any, new_key: str) -> None:
    node = design
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation changed the structure here
    last = path[-1]
    if isinstance(node, dict) and last in node or isinstance(node, list) and isinstance(last, int) and last < len(node):
        if op == "drop":
            del node[last]
        elif op == "replace":
            node[last] = value
        elif op == "add_key" and isinstance(node[last], dict):
            node[last][new_key] = value
        elif op == "wrap":
            node[last] = [node[last]]


def _mutations(paths: list[tuple]):
    mutation = st.tuples(st.sampled_from(paths), st.sampled_from(["drop", "replace", "replace", "add_key", "wrap"]), JUNK, st.text(min_size=1, max_size=8))
    return st.lists(mutation, min_size=1, max_size=3)


def _check(outcome: Any) -> None:
    event("refused" if isinstance(outcome, InputError) else "accepted")
    if isinstance(outcome, InputError):
        message = str(outcome)
        assert "\n" not in message and "\r" not in message, message
        assert len(message) <= MAX_MESSAGE, message[:300]
        assert "expected" in message, message
    else:
        assert isinstance(outcome, Design)


@pytest.fixture(scope="module")
def base(tiny_corpus) -> tuple[dict, Path]:
    return tiny_design(tiny_corpus), tiny_corpus.parent / "fuzz.yaml"


BASE_PATHS = _paths(tiny_design(Path("/corpus")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations=_mutations(BASE_PATHS))
def test_mutated_design_is_accepted_or_refused_in_one_line(base, mutations):
    valid, file = base
    design = copy.deepcopy(valid)
    for path, op, value, new_key in mutations:
        _apply(design, path, op, value, new_key)
    try:
        outcome = parse_design(design, file)
    except InputError as exc:
        outcome = exc
    _check(outcome)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=2000), junk=st.binary(max_size=16))
def test_damaged_design_bytes_are_accepted_or_refused_in_one_line(base, tmp_path_factory, cut, junk):
    """A design file cut short or with bytes spliced in: YAML, UTF-8 and schema errors alike."""
    valid, _ = base
    text = yaml.safe_dump(valid, sort_keys=False).encode()
    cut = cut % (len(text) + 1)
    path = tmp_path_factory.getbasetemp() / "fuzz-bytes.yaml"
    path.write_bytes(text[:cut] + junk + text[cut:])
    try:
        outcome = load_design(path)
    except InputError as exc:
        outcome = exc
    _check(outcome)
