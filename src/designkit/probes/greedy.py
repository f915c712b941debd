"""``greedy``: does greedy decoding after the prompt reproduce the reference (extraction)?"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, GreedyRequest, ItemField, Probe, ProbeContext, as_tokens


def greedy_columns(generated: Sequence[int], reference: Sequence[int]) -> dict[str, Any]:
    """``prefix_match``: leading reference tokens reproduced before the first mismatch."""
    prefix = 0
    for got, want in zip(generated, reference):
        if int(got) != int(want):
            break
        prefix += 1
    return {"exact_match": prefix == len(reference), "prefix_match": prefix, "n_reference": len(reference)}


class Greedy(Probe):
    name = "greedy"
    description = "greedy decoding of up to `max_new_tokens` after EOS + prompt, compared with the reference"
    item_fields = (ItemField("prompt", "prompt tokens"), ItemField("reference", "tokens the model should reproduce"))
    options = (("max_new_tokens", "most tokens to generate, a positive integer"),)
    columns = (
        Column("exact_match", pa.bool_(), "the whole reference reproduced"),
        Column("prefix_match", pa.int32(), "reference tokens reproduced before the first mismatch"),
        Column("n_reference", pa.int32(), "reference tokens"),
    )

    @dataclass(frozen=True)
    class Input:
        prompt: tuple[int, ...]
        reference: tuple[int, ...]
        max_new_tokens: int

    def configure(self, fields: Mapping[str, Any]) -> None:
        value = fields.get("max_new_tokens")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise self.refuse("max_new_tokens", f"expected a positive integer, got {value!r}")
        self.max_new_tokens = int(value)

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input:
        return self.Input(prompt=as_tokens(values["prompt"]), reference=as_tokens(values["reference"]), max_new_tokens=self.max_new_tokens)

    def requests(self, probe_input: Input, eos_id: int) -> list[GreedyRequest]:
        # tokens past the reference cannot change exact_match or prefix_match
        n_new = min(probe_input.max_new_tokens, len(probe_input.reference))
        return [GreedyRequest((int(eos_id),) + probe_input.prompt, n_new)]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        return greedy_columns(results[0], probe_input.reference)
