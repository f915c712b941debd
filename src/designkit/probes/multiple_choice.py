"""``multiple_choice``: rank the choices by their log-likelihood as continuations of the prompt."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, ItemField, Probe, ProbeContext, SpanRequest, as_tokens, is_missing


def _argmax(values: np.ndarray) -> int | None:
    """First index of the maximum, NaN ranked lowest; None if every value is NaN."""
    if np.all(np.isnan(values)):
        return None
    return int(np.argmax(np.where(np.isnan(values), -np.inf, values)))


def multiple_choice_columns(choice_logprobs: Sequence[np.ndarray], gold: int | None) -> dict[str, Any]:
    """Ranked choice by summed and by per-token log-likelihood of each continuation.

    ``margin`` is the gold choice's per-token log-likelihood minus the mean per-token
    log-likelihood of the other choices; a choice of zero tokens has NaN per-token values.
    """
    sums = np.array([float(np.asarray(lp, dtype=np.float64).sum()) for lp in choice_logprobs])
    counts = np.array([len(lp) for lp in choice_logprobs])
    with np.errstate(invalid="ignore", divide="ignore"):
        norms = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    chosen, chosen_norm = _argmax(sums), _argmax(norms)
    if gold is None or not 0 <= gold < len(sums):
        correct = correct_norm = None
        gold_norm = margin = math.nan
    else:
        correct = chosen == gold
        correct_norm = chosen_norm == gold
        gold_norm = float(norms[gold])
        others = np.delete(norms, gold)
        margin = gold_norm - float(others.mean()) if len(others) else math.nan
    return {
        "choice_logprobs": sums.tolist(),
        "choice_logprobs_norm": norms.tolist(),
        "chosen": chosen,
        "chosen_norm": chosen_norm,
        "correct": correct,
        "correct_norm": correct_norm,
        "gold_logprob_norm": gold_norm,
        "margin": margin,
    }


class MultipleChoice(Probe):
    name = "multiple_choice"
    description = "each choice's log-likelihood after EOS + prompt; the top-ranked choice by sum and per token"
    item_fields = (
        ItemField("prompt", "prompt tokens"),
        ItemField("choices", "tokens of each choice"),
        ItemField("gold", "index of the correct choice; if null, choices are ranked, not graded", required=False),
    )
    columns = (
        Column("choice_logprobs", pa.list_(pa.float64()), "summed log-prob of each choice"),
        Column("choice_logprobs_norm", pa.list_(pa.float64()), "per-token log-prob of each choice"),
        Column("chosen", pa.int32(), "index of the highest `choice_logprobs`"),
        Column("chosen_norm", pa.int32(), "index of the highest `choice_logprobs_norm`"),
        Column("correct", pa.bool_(), "`chosen` is gold (null without gold)"),
        Column("correct_norm", pa.bool_(), "`chosen_norm` is gold"),
        Column("gold_logprob_norm", pa.float64(), "per-token log-prob of the gold choice"),
        Column("margin", pa.float64(), "gold minus mean of the other choices, per-token log-prob"),
    )

    @dataclass(frozen=True)
    class Input:
        prompt: tuple[int, ...]
        choices: tuple[tuple[int, ...], ...]
        gold: int | None = None
        """Index of the correct choice, or None when unknown (then ``correct`` is None)."""

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input:
        gold = values["gold"]
        return self.Input(
            prompt=as_tokens(values["prompt"]),
            choices=tuple(as_tokens(c) for c in values["choices"]),
            gold=None if is_missing(gold) else int(gold),
        )

    def requests(self, probe_input: Input, eos_id: int) -> list[SpanRequest]:
        context = (int(eos_id),) + probe_input.prompt
        return [SpanRequest(context + choice, len(context)) for choice in probe_input.choices]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        return multiple_choice_columns(results, probe_input.gold)
