"""``text_loss``: a text's per-token loss and its membership scores (zlib ratio, Min-K% Prob)."""

from __future__ import annotations

import math
import numbers
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, ItemField, Probe, ProbeContext, SpanRequest, as_tokens, is_missing

DEFAULT_MIN_K = 0.2

# the human-readable items column whose zlib entropy goes with each token column
TEXT_OF_TOKENS = {"probe_tokens": "text", "prompt_tokens": "prompt", "target_tokens": "target", "alt_prompt_tokens": "alt_prompt"}


def min_k_count(n: int, min_k: float) -> int:
    """Tokens averaged by Min-K% Prob: ``floor(min_k × n)``, at least one (Shi et al. 2024).

    The epsilon keeps products such as 0.29 × 100 = 28.999… from losing a token to
    floating-point representation.
    """
    return max(1, math.floor(min_k * n + 1e-9))


def min_k_mean(token_logprobs: np.ndarray, min_k: float) -> float:
    """Min-K% Prob (Shi et al. 2024): mean of the ``min_k`` share of lowest token log-probs."""
    if len(token_logprobs) == 0:
        return math.nan
    lowest = np.sort(np.asarray(token_logprobs, dtype=np.float64))[: min_k_count(len(token_logprobs), min_k)]
    return float(lowest.mean())


def zlib_bytes(text: str) -> int:
    """Length in bytes of ``zlib.compress`` (default level) of the UTF-8 text: its zlib entropy."""
    return len(zlib.compress(text.encode("utf-8")))


def text_loss_columns(token_logprobs: np.ndarray, text: str | None, min_k: float) -> dict[str, Any]:
    """Loss, zlib ratio and Min-K% Prob of a text's tokens, each predicted after EOS + the ones before.

    ``zlib_ratio`` follows docs/formats.md: the summed NLL in nats divided by the zlib
    entropy in bytes (``zlib_bytes(text)``). Carlini et al. (2021, "Extracting Training
    Data from Large Language Models") rank by log-perplexity over zlib entropy; the summed
    NLL is the log-perplexity scaled by the token count, which makes the ratio comparable
    across texts of different lengths (nats per compressed byte). Lower means the model
    finds the text easier than its compressibility explains: a memorization signal.
    """
    lp = np.asarray(token_logprobs, dtype=np.float64)
    n = len(lp)
    nll = -float(lp.sum())
    return {
        "loss": nll / n if n else math.nan,
        "n_tokens": n,
        "zlib_ratio": nll / zlib_bytes(text) if text is not None and n else math.nan,
        "min_k_logprob": min_k_mean(lp, min_k),
    }


class TextLoss(Probe):
    name = "text_loss"
    description = "every token of a text predicted after EOS + the tokens before it"
    item_fields = (ItemField("tokens", "the text's tokens"),)
    options = (("min_k", f"share of lowest token log-probs that Min-K% averages, in (0, 1], default {DEFAULT_MIN_K}"),)
    columns = (
        Column("loss", pa.float64(), "mean NLL per token"),
        Column("n_tokens", pa.int32(), "tokens scored"),
        Column("zlib_ratio", pa.float64(), "sum NLL in nats / zlib-compressed bytes of the text"),
        Column("min_k_logprob", pa.float64(), "mean of the lowest `min_k` share of token log-probs"),
    )

    @dataclass(frozen=True)
    class Input:
        tokens: tuple[int, ...]
        text: str | None = None
        """The text that ``tokens`` decode to, compressed for ``zlib_ratio`` (None: NaN)."""
        min_k: float = DEFAULT_MIN_K

    def configure(self, fields: Mapping[str, Any]) -> None:
        value = fields.get("min_k", DEFAULT_MIN_K)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
            raise self.refuse("min_k", f"expected a fraction in (0, 1], got {value!r}")
        self.min_k = float(value)
        self.text_column = TEXT_OF_TOKENS.get(str(fields.get("tokens", "")))

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input:
        text = item.get(self.text_column) if self.text_column else None
        if self.text_column == "text" and not is_missing(item.get("probe_text")):
            text = item["probe_text"]  # a probe instance's own text (the item's text is its training text)
        return self.Input(tokens=as_tokens(values["tokens"]), text=None if is_missing(text) else str(text), min_k=self.min_k)

    def requests(self, probe_input: Input, eos_id: int) -> list[SpanRequest]:
        return [SpanRequest((int(eos_id),) + probe_input.tokens, 1)]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        return text_loss_columns(results[0], probe_input.text, probe_input.min_k)
