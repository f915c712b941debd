"""Probes: the four ways a checkpoint scores an item (docs/formats.md, "Probes").

Every probe reduces to one of two model computations:

- *span log-probs*: ``log p(seq[t] | seq[:t])`` for the positions ``t >= start`` of a token
  sequence (``logprob``, ``multiple_choice``, ``text_loss``);
- *greedy decoding*: the argmax continuation of a prompt (``greedy``).

``score_probes`` runs both padded and batched; ``score_probes_reference`` runs them one
item at a time without padding. The pure ``*_columns`` functions turn either result into
score columns, so the two paths share every formula and differ only in how the model is
called. That is what the tests compare.

Every probe sequence starts with EOS, mirroring the EOS wrap of insertions: the model saw
each inserted item right after an EOS, so that is the context it is asked in.

The model is anything called like ``litgpt.model.GPT``: ``model(idx) -> logits (B, T, V)``
and, for batched greedy decoding, ``set_kv_cache(batch_size, max_seq_length=, device=,
dtype=)``, ``clear_kv_cache()`` and ``model(idx, input_pos=, input_pos_maxp1=)``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

PROBE_COLUMNS: dict[str, tuple[str, ...]] = {
    "logprob": ("logprob", "logprob_per_token", "n_target_tokens"),
    "multiple_choice": (
        "choice_logprobs",
        "choice_logprobs_norm",
        "chosen",
        "chosen_norm",
        "correct",
        "correct_norm",
        "gold_logprob_norm",
        "margin",
    ),
    "greedy": ("exact_match", "prefix_match", "n_reference"),
    "text_loss": ("loss", "n_tokens", "zlib_ratio", "min_k_logprob"),
}
"""Score columns each probe type writes, exactly as docs/formats.md names them."""

PROBE_TYPES = tuple(PROBE_COLUMNS)
DEFAULT_MIN_K = 0.2
DEFAULT_BATCH_TOKENS = 8192
"""Padded tokens per forward pass (batch rows × padded length)."""

# rows of logits upcast to fp32 at once: bounds the extra memory of the fp32 log-softmax
_LOGSOFTMAX_ELEMENTS = 1 << 24
_PAD_ID = 0


@dataclass(frozen=True)
class ProbeInput:
    """One item under one probe, its token fields already read from items.parquet (no EOS).

    Which fields matter depends on ``type``: ``logprob`` uses prompt and target;
    ``multiple_choice`` prompt, choices and gold; ``greedy`` prompt, reference and
    max_new_tokens; ``text_loss`` tokens, text and min_k.
    """

    type: str
    prompt: tuple[int, ...] = ()
    target: tuple[int, ...] = ()
    choices: tuple[tuple[int, ...], ...] = ()
    gold: int | None = None
    """Index of the correct choice, or None when unknown (then ``correct`` is None)."""
    reference: tuple[int, ...] = ()
    max_new_tokens: int = 0
    tokens: tuple[int, ...] = ()
    text: str | None = None
    """The text that ``tokens`` decode to, compressed for ``zlib_ratio`` (None: NaN)."""
    min_k: float = DEFAULT_MIN_K

    def __post_init__(self) -> None:
        if self.type not in PROBE_COLUMNS:
            raise ValueError(f"expected a probe type in {PROBE_TYPES}, got {self.type!r}")


@dataclass(frozen=True)
class SpanRequest:
    """Log-probs of ``tokens[start:]``, each given all tokens before it."""

    tokens: tuple[int, ...]
    start: int

    @property
    def input_length(self) -> int:
        """Tokens fed to the model: all but the last, which is only a target."""
        return len(self.tokens) - 1


@dataclass(frozen=True)
class GreedyRequest:
    """``n_new`` argmax tokens after ``prompt``."""

    prompt: tuple[int, ...]
    n_new: int

    @property
    def input_length(self) -> int:
        # the last generated token is never fed back
        return len(self.prompt) + max(self.n_new - 1, 0)


# ---------------------------------------------------------------------------------------
# score columns: small pure formulas shared by the batched and the reference path


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


def logprob_columns(target_logprobs: np.ndarray) -> dict[str, Any]:
    lp = np.asarray(target_logprobs, dtype=np.float64)
    n = len(lp)
    total = float(lp.sum())
    return {"logprob": total, "logprob_per_token": total / n if n else math.nan, "n_target_tokens": n}


def _argmax(values: np.ndarray) -> int | None:
    """First index of the maximum, NaN ranked lowest; None if every value is NaN."""
    if np.all(np.isnan(values)):
        return None
    return int(np.argmax(np.where(np.isnan(values), -np.inf, values)))


def multiple_choice_columns(choice_logprobs: Sequence[np.ndarray], gold: int | None) -> dict[str, Any]:
    """Ranked choice by summed and by per-token log-likelihood of each continuation.

    ``margin`` is the gold choice's per-token log-likelihood minus the mean per-token
    log-likelihood of the other choices; a choice of zero tokens has NaN per-token values.
    """
    sums = np.array([float(np.asarray(lp, dtype=np.float64).sum()) for lp in choice_logprobs])
    counts = np.array([len(lp) for lp in choice_logprobs])
    with np.errstate(invalid="ignore", divide="ignore"):
        norms = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    chosen, chosen_norm = _argmax(sums), _argmax(norms)
    if gold is None or not 0 <= gold < len(sums):
        correct = correct_norm = None
        gold_norm = margin = math.nan
    else:
        correct = chosen == gold
        correct_norm = chosen_norm == gold
        gold_norm = float(norms[gold])
        others = np.delete(norms, gold)
        margin = gold_norm - float(others.mean()) if len(others) else math.nan
    return {
        "choice_logprobs": sums.tolist(),
        "choice_logprobs_norm": norms.tolist(),
        "chosen": chosen,
        "chosen_norm": chosen_norm,
        "correct": correct,
        "correct_norm": correct_norm,
        "gold_logprob_norm": gold_norm,
        "margin": margin,
    }


def greedy_columns(generated: Sequence[int], reference: Sequence[int]) -> dict[str, Any]:
    """``prefix_match``: leading reference tokens reproduced before the first mismatch."""
    prefix = 0
    for got, want in zip(generated, reference):
        if int(got) != int(want):
            break
        prefix += 1
    return {"exact_match": prefix == len(reference), "prefix_match": prefix, "n_reference": len(reference)}


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


# ---------------------------------------------------------------------------------------
# probe inputs → model requests → columns


def probe_requests(probe: ProbeInput, eos_id: int) -> tuple[list[SpanRequest], list[GreedyRequest]]:
    """The model computations a probe needs; every sequence starts with EOS."""
    eos = (int(eos_id),)
    if probe.type == "logprob":
        context = eos + probe.prompt
        return [SpanRequest(context + probe.target, len(context))], []
    if probe.type == "multiple_choice":
        context = eos + probe.prompt
        return [SpanRequest(context + choice, len(context)) for choice in probe.choices], []
    if probe.type == "text_loss":
        return [SpanRequest(eos + probe.tokens, 1)], []
    # greedy: tokens past the reference cannot change exact_match or prefix_match
    return [], [GreedyRequest(eos + probe.prompt, min(probe.max_new_tokens, len(probe.reference)))]


def probe_columns(probe: ProbeInput, spans: Sequence[np.ndarray], generated: Sequence[np.ndarray]) -> dict[str, Any]:
    if probe.type == "logprob":
        return logprob_columns(spans[0])
    if probe.type == "multiple_choice":
        return multiple_choice_columns(spans, probe.gold)
    if probe.type == "text_loss":
        return text_loss_columns(spans[0], probe.text, probe.min_k)
    return greedy_columns(generated[0], probe.reference)


def required_context(probe: ProbeInput) -> int:
    """Longest input (tokens, EOS included) the probe feeds the model."""
    spans, greedy = probe_requests(probe, 0)
    return max([r.input_length for r in spans] + [r.input_length for r in greedy] + [0])


def score_probes(
    model: torch.nn.Module,
    probes: Sequence[ProbeInput],
    *,
    eos_id: int,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[dict[str, Any]]:
    """Score every probe with padded, length-sorted batches; one column dict per probe."""
    span_owner: list[int] = []
    greedy_owner: list[int] = []
    span_requests: list[SpanRequest] = []
    greedy_requests: list[GreedyRequest] = []
    for i, probe in enumerate(probes):
        spans, greedy = probe_requests(probe, eos_id)
        span_requests += spans
        greedy_requests += greedy
        span_owner += [i] * len(spans)
        greedy_owner += [i] * len(greedy)
    span_results = span_logprobs(model, span_requests, batch_tokens=batch_tokens)
    greedy_results = greedy_decode(model, greedy_requests, batch_tokens=batch_tokens)
    per_span: list[list[np.ndarray]] = [[] for _ in probes]
    per_greedy: list[list[np.ndarray]] = [[] for _ in probes]
    for owner, result in zip(span_owner, span_results):
        per_span[owner].append(result)
    for owner, result in zip(greedy_owner, greedy_results):
        per_greedy[owner].append(result)
    return [probe_columns(p, s, g) for p, s, g in zip(probes, per_span, per_greedy)]


def score_probes_reference(model: torch.nn.Module, probes: Sequence[ProbeInput], *, eos_id: int) -> list[dict[str, Any]]:
    """The same scores one item at a time, without padding or KV cache: the baseline to test against."""
    rows = []
    for probe in probes:
        spans, greedy = probe_requests(probe, eos_id)
        rows.append(
            probe_columns(
                probe,
                [span_logprobs_reference(model, r) for r in spans],
                [greedy_decode_reference(model, r) for r in greedy],
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# model calls


def _model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _check_context(model: torch.nn.Module, length: int) -> None:
    limit = getattr(model, "max_seq_length", None)
    if limit is not None and length > limit:
        raise ValueError(f"expected probe sequences of at most the model's {limit} tokens, got {length}")


def _gathered_logprobs(logits: torch.Tensor, targets: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
    """fp32 ``log_softmax(logits)[target]`` at the positions where ``need`` is set, row-major."""
    selected = logits[need]
    wanted = targets[need]
    out = torch.empty(len(wanted), dtype=torch.float32, device=logits.device)
    rows = max(1, _LOGSOFTMAX_ELEMENTS // max(1, logits.shape[-1]))
    for s in range(0, len(wanted), rows):
        chunk = torch.log_softmax(selected[s : s + rows].float(), dim=-1)
        out[s : s + rows] = chunk.gather(-1, wanted[s : s + rows, None]).squeeze(-1)
    return out


def _token_batches(order: Sequence[int], lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (sorted by length, longest first) within the token budget."""
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) + 1) * width > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def span_logprobs(model: torch.nn.Module, requests: Sequence[SpanRequest], *, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[np.ndarray]:
    """Token log-probs of every request, right-padded in batches of similar length.

    Attention is causal, so the padding after a sequence never reaches its positions.
    Sorting longest first keeps padding small and puts the largest batch first, so an
    out-of-memory error shows at once.
    """
    device, _ = _model_device_dtype(model)
    results: list[np.ndarray] = [np.zeros(0, dtype=np.float64)] * len(requests)
    lengths = [r.input_length for r in requests]
    work = [i for i, r in enumerate(requests) if r.start < len(r.tokens)]
    if not work:
        return results
    _check_context(model, max(lengths[i] for i in work))
    order = sorted(work, key=lambda i: (-lengths[i], i))
    with torch.inference_mode():
        for batch in _token_batches(order, lengths, batch_tokens):
            width = lengths[batch[0]]
            idx = np.full((len(batch), width), _PAD_ID, dtype=np.int64)
            targets = np.zeros((len(batch), width), dtype=np.int64)
            need = np.zeros((len(batch), width), dtype=bool)
            for row, i in enumerate(batch):
                tokens, n = requests[i].tokens, lengths[i]
                idx[row, :n] = tokens[:-1]
                targets[row, :n] = tokens[1:]
                need[row, requests[i].start - 1 : n] = True
            logits = model(torch.from_numpy(idx).to(device))
            flat = _gathered_logprobs(logits, torch.from_numpy(targets).to(device), torch.from_numpy(need).to(device))
            flat = flat.double().cpu().numpy()
            offset = 0
            for i in batch:
                count = len(requests[i].tokens) - requests[i].start
                results[i] = flat[offset : offset + count]
                offset += count
    return results


def span_logprobs_reference(model: torch.nn.Module, request: SpanRequest) -> np.ndarray:
    if request.start >= len(request.tokens):
        return np.zeros(0, dtype=np.float64)
    device, _ = _model_device_dtype(model)
    _check_context(model, request.input_length)
    tokens = torch.tensor(request.tokens, dtype=torch.int64, device=device)
    need = torch.zeros(1, request.input_length, dtype=torch.bool, device=device)
    need[0, request.start - 1 :] = True
    with torch.inference_mode():
        logits = model(tokens[None, :-1])
        return _gathered_logprobs(logits, tokens[None, 1:], need).double().cpu().numpy()


def greedy_decode(model: torch.nn.Module, requests: Sequence[GreedyRequest], *, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[np.ndarray]:
    """Greedy continuations, decoded together with a KV cache by groups of equal prompt length.

    Equal-length prompts share every position, so a batch needs neither padding nor
    per-row positions. The argmax takes the first maximal id, which keeps decoding
    deterministic.
    """
    results: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(requests)
    work = [i for i, r in enumerate(requests) if r.n_new > 0]
    if not work:
        return results
    device, dtype = _model_device_dtype(model)
    total = [len(r.prompt) + r.n_new for r in requests]
    # group by prompt length, longest total first inside a group, so budgets bind early
    order = sorted(work, key=lambda i: (len(requests[i].prompt), -total[i], i))
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if (
            batch is None
            or len(requests[batch[0]].prompt) != len(requests[i].prompt)
            or (len(batch) + 1) * total[batch[0]] > batch_tokens
        ):
            batches.append([i])
        else:
            batch.append(i)
    _check_context(model, max(requests[i].input_length for i in work))
    with torch.inference_mode():
        try:
            for batch in batches:
                prompt_len = len(requests[batch[0]].prompt)
                n_new = max(requests[i].n_new for i in batch)
                # sized per batch, so the cache never exceeds the batch's token budget
                model.set_kv_cache(batch_size=len(batch), max_seq_length=prompt_len + n_new - 1, device=device, dtype=dtype)
                idx = torch.tensor([requests[i].prompt for i in batch], dtype=torch.int64, device=device)
                out = torch.empty(len(batch), n_new, dtype=torch.int64, device=device)
                logits = model(idx, input_pos=torch.arange(prompt_len, device=device), input_pos_maxp1=prompt_len)
                token = logits[:, -1].float().argmax(dim=-1)
                out[:, 0] = token
                for s in range(1, n_new):
                    pos = prompt_len + s - 1
                    logits = model(token[:, None], input_pos=torch.tensor([pos], device=device), input_pos_maxp1=pos + 1)
                    token = logits[:, -1].float().argmax(dim=-1)
                    out[:, s] = token
                generated = out.cpu().numpy()
                for row, i in enumerate(batch):
                    results[i] = generated[row, : requests[i].n_new]
        finally:
            model.clear_kv_cache()
    return results


def greedy_decode_reference(model: torch.nn.Module, request: GreedyRequest) -> np.ndarray:
    """Greedy decoding of one prompt, re-running the whole sequence at every step (no cache)."""
    device, _ = _model_device_dtype(model)
    _check_context(model, request.input_length)
    sequence = list(request.prompt)
    with torch.inference_mode():
        for _ in range(request.n_new):
            logits = model(torch.tensor([sequence], dtype=torch.int64, device=device))
            sequence.append(int(logits[0, -1].float().argmax()))
    return np.asarray(sequence[len(request.prompt) :], dtype=np.int64)
