"""The contract of a probe type: how a checkpoint scores one item (docs/formats.md, "Probes").

A probe type is one ``Probe`` subclass, registered in ``designkit.probes.PROBES``. It
declares, as data:

- ``item_fields``: the keys of its probe spec that name ``items.parquet`` columns, and
  whether an item must have them (an item lacking a required one gets no score row);
- its options (other spec keys such as ``max_new_tokens``), read and checked in ``configure``;
- ``columns``: the score columns it writes, with their Arrow types. A plan's scores schema
  is the key columns plus the union of the columns of the probe types it uses.

and, as three small methods, what it computes: ``read`` turns one item's fields into the
probe's own input (a frozen dataclass), ``requests`` names the model computations that
input needs, ``score`` turns their results into the columns. All three are pure: the
engine runs the requests (batched, or one at a time as the test reference) and nothing
here imports torch, so the planner checks probe specs and the docs list the columns
without a GPU stack.

Model computations are ``Request`` subclasses. The engine runs ``SpanRequest`` (token
log-probs of a span) and ``GreedyRequest`` (greedy continuation, the generated tokens
kept) itself, padded and batched. A probe that needs another computation brings its own
``Request`` subclass and implements ``run_batch`` (its module may import torch inside
that method). ``needs_grad = True`` makes the engine call it with autograd enabled
instead of under ``torch.inference_mode`` (e.g. the gradient of the loss with respect to
the input embeddings, the watermark statistic). Tokens need not come from the item:
``read`` receives a ``ProbeContext`` whose ``sequence(g)`` gives the tokens global
sequence ``g`` was trained on, so a probe can score corpus windows addressed by global
sequence (forgetting curves).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from designkit.errors import InputError
from designkit.plan_types import ProbeSpec


@dataclass(frozen=True)
class Column:
    """One score column a probe type writes."""

    name: str
    type: pa.DataType
    doc: str


@dataclass(frozen=True)
class ItemField:
    """A probe-spec key whose value names an ``items.parquet`` column the probe reads."""

    key: str
    doc: str
    required: bool = True
    """An item whose column is null gets no score row for this probe (a NaN row would enter means)."""


class Request:
    """A model computation a probe needs, as plain data. Subclasses are frozen dataclasses."""

    needs_grad: ClassVar[bool] = False
    """Run with autograd enabled instead of under ``torch.inference_mode``."""

    @property
    def input_length(self) -> int:
        """Tokens fed to the model at once (checked against its context length)."""
        raise NotImplementedError

    @classmethod
    def run_batch(cls, model: Any, requests: Sequence[Request], *, batch_tokens: int) -> list[Any]:
        """The results of ``requests`` on ``model``, in order: the engine's hook for a
        computation it does not run itself. ``model`` is called like ``litgpt.model.GPT``."""
        raise NotImplementedError(f"{cls.__name__} names no way to run it: implement {cls.__name__}.run_batch")

    @classmethod
    def run_reference(cls, model: Any, request: Request) -> Any:
        """One request alone: the baseline batched results are tested against."""
        return cls.run_batch(model, [request], batch_tokens=max(1, request.input_length))[0]


@dataclass(frozen=True)
class SpanRequest(Request):
    """Log-probs of ``tokens[start:]``, each given all tokens before it (a float64 array)."""

    tokens: tuple[int, ...]
    start: int

    @property
    def input_length(self) -> int:
        """Tokens fed to the model: all but the last, which is only a target."""
        return len(self.tokens) - 1


@dataclass(frozen=True)
class GreedyRequest(Request):
    """``n_new`` argmax tokens after ``prompt`` (an int64 array of the generated tokens)."""

    prompt: tuple[int, ...]
    n_new: int

    @property
    def input_length(self) -> int:
        # the last generated token is never fed back
        return len(self.prompt) + max(self.n_new - 1, 0)


class ProbeContext:
    """What a probe's ``read`` may use besides the item's own fields."""

    def __init__(self, eos_id: int, sequence: Callable[[int], np.ndarray] | None = None,
                 decode: Callable[[Sequence[int]], str] | None = None):  # fmt: skip
        self.eos_id = int(eos_id)
        self._sequence = sequence
        self._decode = decode

    def decode(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens`` under the plan's tokenizer (probes that read generated text)."""
        if self._decode is None:
            raise ValueError("this probe context has no tokenizer to decode tokens with")
        return self._decode([int(t) for t in tokens])

    def sequence(self, global_seq: int) -> np.ndarray:
        """The ``seq_len + 1`` tokens global sequence ``global_seq`` was trained on, edits applied."""
        if self._sequence is None:
            raise ValueError("this probe context has no training stream to read sequences from")
        return self._sequence(int(global_seq))


class Probe(ABC):
    """Subclass per probe type and register it in ``designkit.probes.PROBES``."""

    name: ClassVar[str]
    description: ClassVar[str]
    """One line for docs/formats.md: what the probe computes."""
    item_fields: ClassVar[tuple[ItemField, ...]] = ()
    options: ClassVar[tuple[tuple[str, str], ...]] = ()
    """``(key, doc)`` of every other spec key; ``configure`` reads and checks them."""
    columns: ClassVar[tuple[Column, ...]]

    def __init__(self, spec: ProbeSpec | None = None, *, file: str | Path | None = None, at: str | None = None):
        self.spec = spec if spec is not None else ProbeSpec(name=self.name, type=self.name)
        self.file = file
        self.at = at
        self.configure(self.spec.fields)

    def configure(self, fields: Mapping[str, Any]) -> None:
        """Read the options from the spec's fields (``refuse`` a bad one). Default: none."""

    def refuse(self, key: str, expected: str) -> InputError:
        """The one-line error for spec key ``key`` of this probe."""
        return InputError(self.file, f"{self.at}.{key}" if self.at else key, expected)

    def item_columns(self, available: Sequence[str]) -> dict[str, str]:
        """``{field key: items.parquet column}``; refused unless each names an available column."""
        columns = {}
        for field in self.item_fields:
            column = self.spec.fields.get(field.key)
            if column not in available:
                raise self.refuse(field.key, f"expected a column of items.parquet, got {column!r}")
            columns[field.key] = column
        return columns

    @abstractmethod
    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Any:
        """This probe's input for one item (``values``: its item fields, nulls already
        skipped for required ones; ``item``: the whole items row), or None for no row."""

    @abstractmethod
    def requests(self, probe_input: Any, eos_id: int) -> list[Request]:
        """The model computations ``probe_input`` needs."""

    @abstractmethod
    def score(self, probe_input: Any, results: Sequence[Any]) -> dict[str, Any]:
        """The columns, from the results of ``requests`` (in the same order)."""

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return tuple(c.name for c in cls.columns)


def is_missing(value: Any) -> bool:
    """A null item field: None or a float NaN (how pandas reads a null of a numeric column)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_tokens(value: Any) -> tuple[int, ...]:
    return tuple(int(t) for t in value)
