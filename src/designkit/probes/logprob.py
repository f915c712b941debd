"""``logprob``: the log-probability of a target given a prompt (contamination's gold answer)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, ItemField, Probe, ProbeContext, SpanRequest, as_tokens


def logprob_columns(target_logprobs: np.ndarray) -> dict[str, Any]:
    lp = np.asarray(target_logprobs, dtype=np.float64)
    n = len(lp)
    total = float(lp.sum())
    return {"logprob": total, "logprob_per_token": total / n if n else math.nan, "n_target_tokens": n}


class LogProb(Probe):
    name = "logprob"
    description = "sum of the target tokens' log-probs after EOS + prompt"
    item_fields = (ItemField("prompt", "prompt tokens"), ItemField("target", "target tokens"))
    columns = (
        Column("logprob", pa.float64(), "sum over target tokens"),
        Column("logprob_per_token", pa.float64(), "`logprob` / `n_target_tokens`"),
        Column("n_target_tokens", pa.int32(), "target tokens scored"),
    )

    @dataclass(frozen=True)
    class Input:
        prompt: tuple[int, ...]
        target: tuple[int, ...]

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input:
        return self.Input(prompt=as_tokens(values["prompt"]), target=as_tokens(values["target"]))

    def requests(self, probe_input: Input, eos_id: int) -> list[SpanRequest]:
        context = (int(eos_id),) + probe_input.prompt
        return [SpanRequest(context + probe_input.target, len(context))]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        return logprob_columns(results[0])
