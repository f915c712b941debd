"""``sequence_loss``: a whole training window's loss exactly as a training step computes it.

The item's tokens are one window of ``seq_len + 1`` tokens (e.g. a reserve window that
replaced a training sequence, FC); every token after the first is predicted from the ones
before it, with no EOS prepended, so the input is the window's ``seq_len`` inputs and the
loss is the one the optimizer saw when (if ever) the window was trained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, ItemField, Probe, ProbeContext, SpanRequest, as_tokens


class SequenceLoss(Probe):
    name = "sequence_loss"
    description = "mean next-token loss of a whole window of tokens, as trained (no EOS prepended)"
    item_fields = (ItemField("tokens", "the window's seq_len + 1 tokens"),)
    columns = (
        Column("loss", pa.float64(), "mean NLL per predicted token"),
        Column("n_tokens", pa.int32(), "tokens predicted (the window's length minus one)"),
    )

    @dataclass(frozen=True)
    class Input:
        tokens: tuple[int, ...]

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input:
        return self.Input(as_tokens(values["tokens"]))

    def requests(self, probe_input: Input, eos_id: int) -> list[SpanRequest]:
        return [SpanRequest(probe_input.tokens, 1)]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        lp = np.asarray(results[0], dtype=np.float64)
        return {"loss": -float(lp.mean()) if len(lp) else math.nan, "n_tokens": len(lp)}
