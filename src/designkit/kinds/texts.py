"""Generic text insertion: a user's texts, or i.i.d. excerpts of the corpus itself.

With a JSONL file this is MUSE-style insertion: each arm's texts are copied ``dose`` times
into the stream, and membership is read from their loss. With ``items.generate`` the texts
are excerpts of the corpus's reserve region (one reserve window each), which training never
reads otherwise: they are i.i.d. with the training data, so treated and control texts
differ only in being inserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from designkit.errors import InputError
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec, record_meta
from designkit.schema import bounded


@dataclass(frozen=True)
class TextsParams:
    key: str = "text"
    """Field of each JSONL record that holds the text."""
    prefix_tokens: int = bounded(16, ge=1)
    """Tokens given as the prompt when testing verbatim continuation."""
    continuation_tokens: int = bounded(32, ge=1)
    """Tokens of the text that greedy decoding must reproduce."""
    min_k: float = bounded(0.2, gt=0, le=1)
    """Share of lowest-probability tokens averaged by the Min-K% membership score."""


@dataclass(frozen=True)
class TextsGenerate:
    n: int = bounded(ge=1)
    """Number of excerpts drawn from the corpus's reserve region."""
    n_tokens: int = bounded(64, ge=1)
    """Tokens per excerpt."""


class Texts(ExperimentKind):
    name = "texts"
    item_noun = ("text", "texts")
    Params = TextsParams
    GenerateParams = TextsGenerate

    def _split(self, item: Item, tokens: list[int]) -> Item:
        k = min(self.params.prefix_tokens, max(1, len(tokens) // 2))
        item.probe_tokens = tokens
        item.prompt_tokens = tokens[:k]
        item.target_tokens = tokens[k : k + self.params.continuation_tokens]
        return item

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        key = self.params.key
        items = []
        for line_no, record in enumerate(records, start=1):
            text = record.get(key)
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{path}:{line_no}", key, "expected a non-empty string (set params.key for another field)")
            source_id = str(record.get("id", f"{line_no - 1:06d}"))
            item = Item(source_id=source_id, text=text, meta=record_meta(record, (key, "id")))
            items.append(self._split(item, context.tokenizer.encode(text)))
        return items

    def generate(self, options: TextsGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        # each excerpt opens its own reserve window, taken from the planner's allocator so
        # that no other use (a removal's replacement, another experiment) reads its tokens
        width = context.reserve.window_tokens if context.reserve is not None else 0
        if options.n_tokens > width:
            raise InputError(None, "items.generate.n_tokens", f"expected at most a window's {width} tokens (seq_len + 1), got {options.n_tokens}")
        windows = context.take_reserve_windows("texts excerpts", options.n, rng)
        items = []
        for i, (window, window_tokens) in enumerate(windows):
            tokens = window_tokens[: options.n_tokens]
            item = Item(source_id=f"{i:06d}", text=context.tokenizer.decode(tokens), payload_tokens=tokens,
                        meta={"reserve_offset": window * width})
            items.append(self._split(item, tokens))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [
            ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens", "min_k": self.params.min_k}),
            ProbeSpec("continue", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": self.params.continuation_tokens}),
        ]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [
            OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True, description="mean per-token loss of the text (nats)"),
            OutcomeSpec(name="min_k_logprob", probe="loss", column="min_k_logprob", type="continuous", expected_sign=+1, description="Min-K% log-prob membership score"),
            OutcomeSpec(name="zlib_ratio", probe="loss", column="zlib_ratio", type="continuous", expected_sign=-1, description="loss relative to zlib entropy (Carlini et al. 2021)"),
            OutcomeSpec(name="verbatim", probe="continue", column="exact_match", type="binary", expected_sign=+1, baseline=0.0, description="greedy continuation reproduces the text exactly"),
        ]
