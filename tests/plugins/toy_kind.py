"""A toy experiment kind, registered through the ``designkit.kinds`` entry points by the
acceptance test: random-token "facts" (a key, then its value) inserted ``dose`` times,
scored by the toy probe type and analysed by the toy estimator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from designkit.kinds import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec


@dataclass(frozen=True)
class ToyParams:
    value_tokens: int = 4
    """Tokens of each fact's value (the part the probe scores)."""


@dataclass(frozen=True)
class ToyGenerate:
    n: int
    key_tokens: int = 6


class ToyFacts(ExperimentKind):
    name = "toy_facts"
    Params = ToyParams
    GenerateParams = ToyGenerate
    item_noun = ("fact", "facts")

    def generate(self, options: ToyGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        vocab = context.tokenizer.vocab_size
        items = []
        for i in range(options.n):
            key = [int(t) for t in rng.integers(10, vocab, options.key_tokens)]
            value = [int(t) for t in rng.integers(10, vocab, self.params.value_tokens)]
            items.append(Item(source_id=f"fact{i:03d}", payload_tokens=key + value, prompt_tokens=key, target_tokens=value))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("bits", "toy_surprise", {"prompt": "prompt_tokens", "target": "target_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="surprise", probe="bits", column="surprise_bits", type="continuous", expected_sign=-1,
                            primary=True, estimator="toy_median_shift", description="bits to encode the value after its key")]
