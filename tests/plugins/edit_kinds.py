"""Minimal experiment kinds for each edit a kind can declare, named by import path in test designs.

- ``WindowRemoval`` (``remove``, MemV-style): items are corpus windows the run reads; a
  treated window is swapped for a reserve window wherever the run reads it.
- ``WindowNoise`` (``noise``, GW-style on base data): the same windows keep their tokens and
  get Gaussian noise on their input embeddings.
- ``SpanWatermark`` (``insert`` with noise): random-token texts inserted ``dose`` times,
  each repetition carrying the item's own noise on its span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from designkit.kinds import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec


@dataclass(frozen=True)
class WindowParams:
    noise_std: float = 0.5
    """Std of the embedding noise (noise kinds only)."""


@dataclass(frozen=True)
class WindowGenerate:
    n: int


class WindowRemoval(ExperimentKind):
    name = "test_window_removal"
    Params = WindowParams
    GenerateParams = WindowGenerate
    edit = "remove"

    def generate(self, options: WindowGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        items = []
        for i, window in enumerate(context.sample_run_windows(options.n, rng)):
            tokens = context.window_tokens(window)
            # the probe is the window's input minus one token: with its leading EOS it fits the block
            items.append(Item(source_id=f"w{i:04d}", payload_tokens=tokens, probe_tokens=tokens[:-2], corpus_window=window))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=+1, primary=True)]


class WindowNoise(WindowRemoval):
    name = "test_window_noise"
    edit = "noise"

    def noise_std(self, arm: str) -> float:
        return self.params.noise_std


@dataclass(frozen=True)
class WatermarkGenerate:
    n: int
    length: int = 10


class SpanWatermark(ExperimentKind):
    name = "test_span_watermark"
    Params = WindowParams
    GenerateParams = WatermarkGenerate

    def noise_std(self, arm: str) -> float:
        return self.params.noise_std

    def generate(self, options: WatermarkGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        vocab = context.tokenizer.vocab_size
        items = []
        for i in range(options.n):
            tokens = [int(t) for t in rng.integers(10, vocab, options.length)]
            items.append(Item(source_id=f"t{i:04d}", payload_tokens=tokens, probe_tokens=tokens))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True)]
