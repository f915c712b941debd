"""A toy probe type, registered through the ``designkit.probes`` entry points by the
acceptance test: the information content (bits) of a target after its prompt."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, ItemField, Probe, ProbeContext, SpanRequest, as_tokens


class ToySurprise(Probe):
    name = "toy_surprise"
    description = "bits needed to encode the target after EOS + prompt"
    item_fields = (ItemField("prompt", "prompt tokens"), ItemField("target", "target tokens"))
    columns = (Column("surprise_bits", pa.float64(), "-sum of the target's log2-probs"),)

    @dataclass(frozen=True)
    class Input:
        prompt: tuple[int, ...]
        target: tuple[int, ...]

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input:
        return self.Input(as_tokens(values["prompt"]), as_tokens(values["target"]))

    def requests(self, probe_input: Input, eos_id: int) -> list[SpanRequest]:
        tokens = (int(eos_id), *probe_input.prompt, *probe_input.target)
        return [SpanRequest(tokens, 1 + len(probe_input.prompt))]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        return {"surprise_bits": -float(np.sum(results[0])) / math.log(2)}
