"""The engine's side of probes: running the model computations probe types ask for.

A probe type (``designkit.probes``, no torch) turns an item into *requests* and their
results into score columns. This module runs the requests on a model:

- ``SpanRequest``: ``log p(seq[t] | seq[:t])`` for the positions ``t >= start`` of a token
  sequence (``logprob``, ``multiple_choice``, ``text_loss``);
- ``GreedyRequest``: the argmax continuation of a prompt, its tokens kept (``greedy``);
- any other ``Request`` subclass through its own ``run_batch`` hook, with autograd enabled
  when it sets ``needs_grad`` and under ``torch.inference_mode`` otherwise.

``score_probes`` runs every request padded and batched; ``score_probes_reference`` runs
them one at a time without padding. Both hand the results to the same ``Probe.score``,
so the two paths share every formula and differ only in how the model is called. That is
what the tests compare.

Every probe sequence starts with EOS, mirroring the EOS wrap of insertions: the model saw
each inserted item right after an EOS, so that is the context it is asked in.

The model is anything called like ``litgpt.model.GPT``: ``model(idx) -> logits (B, T, V)``
and, for batched greedy decoding, ``set_kv_cache(batch_size, max_seq_length=, device=,
dtype=)``, ``clear_kv_cache()`` and ``model(idx, input_pos=, input_pos_maxp1=)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from designkit.probes import GreedyRequest, Probe, Request, SpanRequest

DEFAULT_BATCH_TOKENS = 8192
"""Padded tokens per forward pass (batch rows × padded length)."""

# rows of logits upcast to fp32 at once: bounds the extra memory of the fp32 log-softmax
_LOGSOFTMAX_ELEMENTS = 1 << 24
_PAD_ID = 0

ProbeJob = tuple[Probe, Any]
"""A configured probe and one item's input to it."""


def required_context(job: ProbeJob, eos_id: int = 0) -> int:
    """Longest input (tokens, EOS included) the probe feeds the model."""
    probe, probe_input = job
    return max([r.input_length for r in probe.requests(probe_input, eos_id)] + [0])


def _grad_mode(cls: type[Request]):
    return torch.enable_grad() if cls.needs_grad else torch.inference_mode()


def run_requests(model: torch.nn.Module, requests: Sequence[Request], *, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[Any]:
    """Results of requests of one class, in order: the built-in runners or the class's hook."""
    if not requests:
        return []
    cls = type(requests[0])
    if cls is SpanRequest:
        return span_logprobs(model, requests, batch_tokens=batch_tokens)
    if cls is GreedyRequest:
        return greedy_decode(model, requests, batch_tokens=batch_tokens)
    _check_context(model, max(r.input_length for r in requests))
    with _grad_mode(cls):
        results = list(cls.run_batch(model, requests, batch_tokens=batch_tokens))
    if len(results) != len(requests):
        raise RuntimeError(f"{cls.__name__}.run_batch returned {len(results)} results for {len(requests)} requests")
    return results


def run_request_reference(model: torch.nn.Module, request: Request) -> Any:
    cls = type(request)
    if cls is SpanRequest:
        return span_logprobs_reference(model, request)
    if cls is GreedyRequest:
        return greedy_decode_reference(model, request)
    _check_context(model, request.input_length)
    with _grad_mode(cls):
        return cls.run_reference(model, request)


def score_probes(
    model: torch.nn.Module,
    jobs: Sequence[ProbeJob],
    *,
    eos_id: int,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[dict[str, Any]]:
    """Score every (probe, input) with padded, length-sorted batches; one column dict per job.

    Requests are grouped by class in job order, so each runner sees them in a fixed order
    and the batches depend only on the jobs and ``batch_tokens``.
    """
    by_class: dict[type[Request], list[Request]] = {}
    slots: list[list[tuple[type[Request], int]]] = []
    for probe, probe_input in jobs:
        mine = []
        for request in probe.requests(probe_input, eos_id):
            queue = by_class.setdefault(type(request), [])
            mine.append((type(request), len(queue)))
            queue.append(request)
        slots.append(mine)
    results = {cls: run_requests(model, requests, batch_tokens=batch_tokens) for cls, requests in by_class.items()}
    return [probe.score(probe_input, [results[cls][i] for cls, i in mine]) for (probe, probe_input), mine in zip(jobs, slots)]


def score_probes_reference(model: torch.nn.Module, jobs: Sequence[ProbeJob], *, eos_id: int) -> list[dict[str, Any]]:
    """The same scores one request at a time, without padding or KV cache: the baseline to test against."""
    return [
        probe.score(probe_input, [run_request_reference(model, r) for r in probe.requests(probe_input, eos_id)])
        for probe, probe_input in jobs
    ]


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
