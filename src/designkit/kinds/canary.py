"""Memorization canaries: random token sequences, inserted or never inserted.

Random tokens carry no information the model could learn elsewhere, so the loss of an
inserted canary against never-inserted canaries of the same construction measures
exposure (Carlini et al. 2019, "The Secret Sharer"). Part of a lower loss can be mere
token familiarity: an inserted canary's tokens became more frequent. ``order_memorization``
separates the two: the loss of the same tokens in a fixed shuffled order minus the loss in
the inserted order, treated against control. Greedy extraction asks whether the model
reproduces the canary's tail from its head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from designkit.errors import InputError
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec
from designkit.schema import bounded

MAX_GENERATED_TOKENS = 2**28
"""Canaries are drawn in memory as int64: n × length tokens must stay within 2 GiB."""


@dataclass(frozen=True)
class CanaryParams:
    prefix_tokens: int = bounded(8, ge=1)
    """Tokens given as the prompt for greedy extraction; the rest is the reference."""
    min_k: float = bounded(0.2, gt=0, le=1)
    """Share of lowest-probability tokens averaged by the Min-K% membership score."""


@dataclass(frozen=True)
class CanaryGenerate:
    n: int = bounded(ge=1)
    """Number of canaries."""
    length: int = bounded(32, ge=2)
    """Tokens per canary."""


class Canary(ExperimentKind):
    name = "canary"
    item_noun = ("canary", "canaries")
    Params = CanaryParams
    GenerateParams = CanaryGenerate

    @classmethod
    def check(cls, params: CanaryParams, options: CanaryGenerate | None) -> None:
        if options is None:
            return
        if options.length <= params.prefix_tokens:
            raise InputError(None, "items.generate.length", f"expected more than params.prefix_tokens={params.prefix_tokens} tokens, got {options.length}")
        total = options.n * options.length
        if total > MAX_GENERATED_TOKENS:
            key = "items.generate.n" if options.n >= options.length else "items.generate.length"
            raise InputError(
                None, key,
                f"expected n × length ≤ {MAX_GENERATED_TOKENS:,} tokens (canaries are drawn in memory), "
                f"got {options.n:,} × {options.length:,} = {total:.3g} tokens, {total * 8 / 2**40:.3g} TiB",
            )

    def generate(self, options: CanaryGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        self.check(self.params, options)
        special = set(context.tokenizer.special_ids)
        vocabulary = np.array([t for t in range(context.tokenizer.vocab_size) if t not in special], dtype=np.int64)
        draws = vocabulary[rng.integers(len(vocabulary), size=(options.n, options.length))]
        shuffled = rng.permuted(draws, axis=1).astype(np.int32)
        draws = draws.astype(np.int32)
        k = self.params.prefix_tokens
        texts = context.tokenizer.decode_batch(draws)
        meta = {"length": options.length}
        # token fields are rows of two arrays (views): 200k canaries as Python int lists took ~0.5 GB
        return [
            Item(
                source_id=f"{i:06d}",
                text=text,
                payload_tokens=draws[i],
                probe_tokens=draws[i],
                alt_probe_tokens=shuffled[i],
                prompt_tokens=draws[i, :k],
                target_tokens=draws[i, k:],
                meta=meta,
            )
            for i, text in enumerate(texts)
        ]

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        longest = max(len(item.target_tokens) if item.target_tokens is not None else 0 for item in items)
        return [
            ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens", "min_k": self.params.min_k}),
            ProbeSpec("loss_shuffled", "text_loss", {"tokens": "alt_probe_tokens", "min_k": self.params.min_k}),
            ProbeSpec("extract", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": longest}),
        ]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [
            OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True,
                        description="mean per-token loss of the canary (nats)"),
            OutcomeSpec(name="order_memorization", probe="loss_shuffled", column="loss", type="continuous", expected_sign=+1, minus_probe="loss",
                        description="loss of the canary's tokens shuffled minus in their inserted order: memorized order beyond token familiarity"),
            OutcomeSpec(name="min_k_logprob", probe="loss", column="min_k_logprob", type="continuous", expected_sign=+1,
                        description="Min-K% log-prob membership score"),
            OutcomeSpec(name="extracted", probe="extract", column="exact_match", type="binary", expected_sign=+1, baseline=0.0,
                        description="greedy decoding reproduces the canary's tail exactly"),
            OutcomeSpec(name="extracted_prefix", probe="extract", column="prefix_match", type="continuous", expected_sign=+1,
                        description="tokens of the tail reproduced before the first mistake"),
        ]
