"""Minimal kinds whose items have several payloads and several probe instances, named by
import path in test designs (the real kinds, knowledge, reasoning, poisoning, texts, build on
the same ``Item`` API).

- ``KeyedFacts``: a random-token key with several "paraphrases" (the key followed by one of
  its values); every paraphrase is a payload placed ``dose`` times, every (key, value) pair is
  a probe instance scored by ``logprob`` of the value after the key, and a binary outcome
  asks whether the value's first token is the model's top choice (greedy).
- ``CycledFacts``: the same items, but the dose counts the item's insertions in all and
  cycles over its paraphrases (the paper's knowledge acquisition).
- ``TemplatedNotes``: texts built from one long shared template and a per-item number
  (the "Field note N: …" design that let control texts learn from treated ones), or, with
  ``distinct: true``, random-token texts that share nothing.
- ``HeldOutProblems``: held-out test instances; ``leak: true`` makes each item's first
  instance a copy of one of its training payloads (a decontamination failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from designkit.kinds import ExperimentKind, Item, OutcomeSpec, Payload, PlanContext, ProbeInstance, ProbeSpec


@dataclass(frozen=True)
class FactParams:
    aggregate: str = "mean"
    """How the binary outcome's instances reach the test: ``mean`` or ``cluster_robust``."""


@dataclass(frozen=True)
class FactGenerate:
    n: int
    paraphrases: int = 3
    key_tokens: int = 4
    value_tokens: int = 3


class KeyedFacts(ExperimentKind):
    name = "test_keyed_facts"
    Params = FactParams
    GenerateParams = FactGenerate
    item_noun = ("fact", "facts")

    def generate(self, options: FactGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        vocab = context.tokenizer.vocab_size
        items = []
        for i in range(options.n):
            key = [int(t) for t in rng.integers(10, vocab, options.key_tokens)]
            values = [[int(t) for t in rng.integers(10, vocab, options.value_tokens)] for _ in range(options.paraphrases)]
            items.append(Item(
                source_id=f"fact{i:03d}",
                payloads=[Payload(tokens=key + value) for value in values],
                probe_instances=[ProbeInstance(prompt_tokens=key, target_tokens=value, meta={"paraphrase": j})
                                 for j, value in enumerate(values)],
            ))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [
            ProbeSpec("value", "logprob", {"prompt": "prompt_tokens", "target": "target_tokens"}),
            ProbeSpec("recall", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": 1}),
        ]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [
            OutcomeSpec(name="value_logprob", probe="value", column="logprob_per_token", type="continuous", expected_sign=+1,
                        primary=True, description="per-token log-prob of a value after its key"),
            OutcomeSpec(name="first_token", probe="recall", column="prefix_match", type="binary", expected_sign=+1,
                        aggregate=self.params.aggregate, description="the value's first token is the greedy choice"),
        ]


class CycledFacts(KeyedFacts):
    name = "test_cycled_facts"
    dose_counts = "item"


@dataclass(frozen=True)
class NoteParams:
    distinct: bool = False
    """Random-token texts instead of the shared template."""


@dataclass(frozen=True)
class NoteGenerate:
    n: int


TEMPLATE = "Field note {n}: the keeper of the tower wrote the number on the north wall."


class TemplatedNotes(ExperimentKind):
    name = "test_templated_notes"
    Params = NoteParams
    GenerateParams = NoteGenerate

    def generate(self, options: NoteGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        if self.params.distinct:
            vocab = context.tokenizer.vocab_size
            texts = [rng.integers(10, vocab, 24) for _ in range(options.n)]
            return [Item(source_id=f"note{i:03d}", payload_tokens=t, probe_tokens=t) for i, t in enumerate(texts)]
        notes = [TEMPLATE.format(n=int(rng.integers(100, 999))) for _ in range(options.n)]
        return [Item(source_id=f"note{i:03d}", text=t, probe_text=t) for i, t in enumerate(notes)]

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True)]


@dataclass(frozen=True)
class ProblemParams:
    leak: bool = False
    """Each item's first test instance copies one of its training payloads."""


class HeldOutProblems(ExperimentKind):
    name = "test_held_out_problems"
    Params = ProblemParams
    GenerateParams = FactGenerate
    probes_held_out = True

    def generate(self, options: FactGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        vocab = context.tokenizer.vocab_size

        def text() -> list[int]:
            return [int(t) for t in rng.integers(10, vocab, 20)]

        items = []
        for i in range(options.n):
            train = [text() for _ in range(options.paraphrases)]
            tests = [text() for _ in range(2)]
            if self.params.leak:
                tests[0] = list(train[0])
            items.append(Item(source_id=f"tmpl{i:03d}", payloads=[Payload(tokens=t) for t in train],
                              probe_instances=[ProbeInstance(probe_tokens=t) for t in tests]))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True)]
