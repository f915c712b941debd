"""Three probe types outside designkit, named by import path (``probe_hooks:Name``) in tests.

Each shows one thing the probe contract allows beyond the built-ins:

- ``EmbeddingGradNorm``: a computation of its own that needs autograd (the watermark's
  embedding-gradient statistic has this shape);
- ``Continuation``: free generation that keeps the generated tokens as a list column;
- ``WindowLoss``: tokens that are a trained corpus window addressed by global sequence,
  not item text (forgetting curves).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from designkit.probes import Column, GreedyRequest, ItemField, Probe, ProbeContext, Request, SpanRequest
from designkit.probes.base import as_tokens


@dataclass(frozen=True)
class EmbeddingGradRequest(Request):
    """L2 norm of d(mean next-token loss)/d(input embeddings) of ``tokens``."""

    tokens: tuple[int, ...]
    needs_grad: ClassVar[bool] = True

    @property
    def input_length(self) -> int:
        return len(self.tokens) - 1

    @classmethod
    def run_batch(cls, model, requests, *, batch_tokens):
        import torch

        results = []
        for request in requests:
            captured = {}
            handle = model.transformer.wte.register_forward_hook(lambda m, i, out: captured.setdefault("emb", out))
            try:
                tokens = torch.tensor([request.tokens], dtype=torch.int64)
                logits = model(tokens[:, :-1])
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens[0, 1:])
                (grad,) = torch.autograd.grad(loss, captured["emb"])  # no parameter .grad is touched
            finally:
                handle.remove()
            results.append(float(grad.double().norm()))
        return results


class EmbeddingGradNorm(Probe):
    name = "embedding_grad_norm"
    description = "norm of the loss gradient with respect to the input embeddings of a text"
    item_fields = (ItemField("tokens", "the text's tokens"),)
    columns = (Column("grad_norm", pa.float64(), "L2 norm of the embedding gradient"),)

    def read(self, values, item, context):
        return as_tokens(values["tokens"])

    def requests(self, probe_input, eos_id):
        return [EmbeddingGradRequest((int(eos_id),) + probe_input)]

    def score(self, probe_input, results):
        return {"grad_norm": results[0]}


class Continuation(Probe):
    name = "continuation"
    description = "greedy free generation after the prompt, its tokens kept"
    item_fields = (ItemField("prompt", "prompt tokens"),)
    options = (("max_new_tokens", "tokens to generate"),)
    columns = (
        Column("generated", pa.list_(pa.int32()), "the generated tokens"),
        Column("n_generated", pa.int32(), "how many"),
    )

    def configure(self, fields: Mapping[str, Any]) -> None:
        value = fields.get("max_new_tokens")
        if not isinstance(value, numbers.Integral) or value < 1:
            raise self.refuse("max_new_tokens", f"expected a positive integer, got {value!r}")
        self.max_new_tokens = int(value)

    def read(self, values, item, context):
        return as_tokens(values["prompt"])

    def requests(self, probe_input, eos_id):
        return [GreedyRequest((int(eos_id),) + probe_input, self.max_new_tokens)]

    def score(self, probe_input, results: Sequence[np.ndarray]):
        return {"generated": [int(t) for t in results[0]], "n_generated": len(results[0])}


class WindowLoss(Probe):
    name = "window_loss"
    description = "mean loss of the trained window of global sequence `global_seq`"
    options = (("global_seq", "the global sequence whose window is scored"),)
    columns = (Column("window_loss", pa.float64(), "mean NLL per token of the window"),)

    @dataclass(frozen=True)
    class Input:
        tokens: tuple[int, ...]

    def configure(self, fields: Mapping[str, Any]) -> None:
        self.global_seq = int(fields["global_seq"])

    def read(self, values, item, context: ProbeContext):
        return self.Input(as_tokens(context.sequence(self.global_seq)))

    def requests(self, probe_input, eos_id):
        return [SpanRequest(probe_input.tokens, 1)]  # the window as trained: no EOS prepended

    def score(self, probe_input, results):
        lp = np.asarray(results[0], dtype=np.float64)
        return {"window_loss": -float(lp.mean()) if len(lp) else math.nan}
