"""``watermark_gradient``: the Gaussian-watermark test statistic of one item (GW).

An item's watermark is Gaussian noise eps ~ N(0, sigma^2 I) added to the input embeddings of
its span in training (every repetition gets the same eps, re-derived from the item's
``noise_seed``; see ``watermark_noise``). At a checkpoint, with the *clean* embeddings e of
the span's tokens and g = grad_e loss(e), the statistic is (Pawelczyk et al., "Machine
Unlearning Fails to Remove Data Poisoning Attacks", 2024; Bordt & Pawelczyk 2025):

    x = g . eps / (sigma ||g||) = g . z / ||g||,    z = eps / sigma ~ N(0, I).

- **Null.** If eps was never trained on, z is independent of the model and of e, so x is
  exactly N(0, 1) whatever g is (a fixed unit vector dotted with a standard normal).
  sigma cancels, so a control item needs only a seed, not a std.
- **Direction.** Training on e + eps lowers loss(e + eps) more than loss at nearby inputs.
  To first order loss(e + eps) - loss(e) = g . eps, so a model that fits the watermarked
  input better than the clean one has g . eps < 0: trained watermarks push x *negative*,
  and the test is one-sided, H1: E[x] < 0 (verified empirically by
  ``tests/engine/test_watermark.py``).

The loss is the summed next-token NLL of the span (each token predicted from the ones before
it in the span; the span's last token is only a target, as in training where it predicts the
next corpus token), the gradient is taken w.r.t. the input embeddings of every fed position,
and the sum over positions and embedding dimensions is one dot product. The probe's tokens
are exactly what training noised: ``EOS + text + EOS`` for an inserted text, the window's
``seq_len + 1`` tokens for a whole base sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, ItemField, Probe, ProbeContext, Request, as_tokens, is_missing


def watermark_noise(seed: int, std: float, n_positions: int, n_embd: int):
    """The watermark of a span: ``std × N(0, I)`` of shape ``(n_positions, n_embd)``, drawn on
    the CPU from a ``torch.Generator`` seeded with ``seed`` alone, so it is bit-identical on
    every device and re-derivable at any time. Row ``j`` does not depend on ``n_positions``
    (CPU ``randn`` fills rows in order), so a span clipped at the end of a window carries the
    first rows of the same watermark. The training hook (``engine.model``) uses this function."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(int(n_positions), int(n_embd), generator=generator) * float(std)


@dataclass(frozen=True)
class EmbeddingGradientRequest(Request):
    """``(x, ||g||)`` for a span's tokens and watermark seed: see the module docstring."""

    tokens: tuple[int, ...]
    seed: int
    needs_grad: ClassVar[bool] = True

    @property
    def input_length(self) -> int:
        return len(self.tokens) - 1

    @classmethod
    def run_batch(cls, model: Any, requests: Sequence[EmbeddingGradientRequest], *, batch_tokens: int) -> list[tuple[float, float]]:
        """Rows of equal length share a forward pass: each row's loss depends only on its own
        embeddings (causal attention, no padding), so the gradient of the summed loss w.r.t.
        a row's embeddings is that row's own gradient."""
        import torch

        gpt = getattr(model, "module", model)
        gpt = getattr(gpt, "_orig_mod", gpt)
        param = next(p for p in gpt.parameters() if p.is_floating_point())
        results: list[tuple[float, float]] = [(np.nan, np.nan)] * len(requests)
        by_length: dict[int, list[int]] = {}
        for i, request in enumerate(requests):
            if request.input_length > 0:
                by_length.setdefault(request.input_length, []).append(i)
        for length, members in sorted(by_length.items()):
            rows = max(1, batch_tokens // length)
            for s in range(0, len(members), rows):
                batch = members[s : s + rows]
                tokens = torch.tensor([requests[i].tokens for i in batch], dtype=torch.int64, device=param.device)
                captured: list[torch.Tensor] = []

                def leaf(module, inputs, output, captured=captured):
                    # the clean embeddings as a leaf, so autograd gives d loss / d e
                    embeddings = output.detach().requires_grad_(True)
                    captured.append(embeddings)
                    return embeddings

                handle = gpt.transformer.wte.register_forward_hook(leaf)
                try:
                    logits = gpt(tokens[:, :-1])
                finally:
                    handle.remove()
                loss = torch.nn.functional.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="sum")
                (grad,) = torch.autograd.grad(loss, captured[0])
                grad = grad.detach().double().cpu()
                for row, i in enumerate(batch):
                    z = watermark_noise(requests[i].seed, 1.0, length, grad.shape[-1]).double()
                    g = grad[row]
                    norm = float(torch.linalg.vector_norm(g))
                    results[i] = (float((g * z).sum()) / norm if norm > 0 else np.nan, norm)
        return results


class WatermarkGradient(Probe):
    name = "watermark_gradient"
    description = ("Gaussian-watermark statistic x = grad_e loss . eps / (sigma ||grad_e loss||) at the clean input "
                   "embeddings of the span the item's watermark covered; N(0, 1) for a watermark never trained on")
    item_fields = (
        ItemField("tokens", "the span's tokens exactly as trained (EOS + text + EOS, or a whole window)"),
        ItemField("seed", "the item's watermark seed (items.parquet `noise_seed`; -1: no watermark, no row)"),
    )
    columns = (
        Column("wm_stat", pa.float64(), "the watermark statistic x (negative: the watermark was learned)"),
        Column("grad_norm", pa.float64(), "||grad_e loss|| of the span's clean embeddings"),
    )

    @dataclass(frozen=True)
    class Input:
        tokens: tuple[int, ...]
        seed: int

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input | None:
        seed = values["seed"]
        if is_missing(seed) or int(seed) < 0 or len(values["tokens"]) < 2:
            return None
        return self.Input(as_tokens(values["tokens"]), int(seed))

    def requests(self, probe_input: Input, eos_id: int) -> list[Request]:
        return [EmbeddingGradientRequest(probe_input.tokens, probe_input.seed)]

    def score(self, probe_input: Input, results: Sequence[Any]) -> dict[str, Any]:
        x, norm = results[0]
        return {"wm_stat": float(x), "grad_norm": float(norm)}
