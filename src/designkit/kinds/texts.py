"""Generic text insertion, all the modes (MUSE / IID): a user's documents, or i.i.d. documents of the corpus.

**Documents from a JSONL file** (MUSE-style; Shi et al. 2024, "MUSE: Machine Unlearning
Six-Way Evaluation"): each record's ``params.key`` field (default ``text``) is a document,
``id`` names it. A document longer than a sequence is split across sequences, so book- or
news-length documents can be inserted:

- ``params.split: whole`` (default): the document's tokens in consecutive chunks of at most
  ``params.chunk_tokens`` tokens (default: what a sequence holds with its EOS wrappers);
- ``params.split: paragraphs``: one chunk per paragraph (blank-line separated), a paragraph
  longer than ``chunk_tokens`` chunked in turn.

With ``params.unit: document`` (default) a document is one item, the randomized unit: its
chunks are the item's payloads, each placed ``dose`` times, and each chunk is a probe
instance; the analysis averages a document's chunk scores to the document before testing.
With ``params.unit: chunk`` every chunk is its own item (``source_id`` ``ID.NNN``) and the
chunks of a document share ``meta.document`` and ``stratum`` (the document id), so
``stratify_by: stratum`` puts every document's chunks in every arm (a within-document design;
its controls share the document's topic and style with treated chunks).
**Copy counts** are the arms' doses, e.g. ``x1``/``x10``/``x100`` against ``control``.

**I.i.d. documents** (``items.generate``; Bordt & Pawelczyk 2025, "Train Once, Answer All",
the IID experiment): documents drawn from the corpus's reserve region, which training never
reads otherwise, so treated and control documents differ only in being trained:

- ``params.replace: false`` (default): each item is the first ``n_tokens`` tokens of its own
  reserve window, inserted ``dose`` times;
- ``params.replace: true``: the i.i.d.-replacement mode. Each item is a whole reserve window
  (a document of ``seq_len + 1`` tokens) paired with ``items.generate.copies`` training
  windows of the run; the edit is ``remove``: every sequence of a treated item's windows is
  replaced by the item's reserve document, which is so trained in place of base sequences
  (as often as the run reads those windows), without changing the number of tokens trained.
  A control item's windows are trained unchanged and its reserve document never. The probes
  score the document's first ``seq_len - 1`` tokens (after an EOS, within a model's context).

**Parameters** (``params``): ``key``, ``split``, ``chunk_tokens``, ``unit``, ``replace``, ``prefix_tokens``
(16) and ``continuation_tokens`` (32) for the verbatim-continuation probe, ``min_k`` (0.2).
``items.generate``: ``n`` documents, ``n_tokens`` (64, insertion mode), ``copies`` (1,
replacement mode).

**Probes:** ``loss`` (``text_loss`` on the chunk: mean loss, Min-K% log-prob, zlib ratio) and
``continue`` (``greedy`` from the first ``prefix_tokens`` tokens, compared with the next
``continuation_tokens``).

**Outcomes and estimators:** ``loss`` (primary, the design's continuous method),
``min_k_logprob`` and ``zlib_ratio`` (membership scores), ``membership_auc`` (``auc``: AUC of
the loss as a membership score, trained against never-trained documents) and
``membership_tpr`` (``tpr_at_fpr``: TPR at 1% FPR with a bootstrap CI), ``verbatim`` (exact
greedy continuation, binary).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designkit.errors import InputError, quote
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, Payload, PlanContext, ProbeInstance, ProbeSpec, record_meta
from designkit.schema import bounded

EOS_WRAP = 2
"""An inserted chunk is EOS + chunk + EOS (the planner's wrapping)."""
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class TextsParams:
    key: str = "text"
    """Field of each JSONL record that holds the document."""
    split: Literal["whole", "paragraphs"] = "whole"
    """How a document becomes chunks: consecutive chunks of ``chunk_tokens`` (whole), or one per paragraph."""
    chunk_tokens: int | None = bounded(None, ge=2)
    """Most tokens per chunk (default: a sequence's seq_len minus the two EOS wrappers)."""
    unit: Literal["document", "chunk"] = "document"
    """The randomized unit of a split document: the document (its chunks are payloads and probe instances) or each chunk."""
    replace: bool = False
    """I.i.d. replacement (with ``items.generate``): treated reserve documents replace whole base sequences (edit ``remove``)."""
    prefix_tokens: int = bounded(16, ge=1)
    """Tokens given as the prompt when testing verbatim continuation."""
    continuation_tokens: int = bounded(32, ge=1)
    """Tokens of the text that greedy decoding must reproduce."""
    min_k: float = bounded(0.2, gt=0, le=1)
    """Share of lowest-probability tokens averaged by the Min-K% membership score."""


@dataclass(frozen=True)
class TextsGenerate:
    n: int = bounded(ge=1)
    """Number of documents drawn from the corpus's reserve region."""
    n_tokens: int = bounded(64, ge=1)
    """Tokens per document (insertion mode; a replacement document is a whole window)."""
    copies: int = bounded(1, ge=1)
    """Replacement mode: training windows per document, each of whose sequences a treated document replaces."""


class Texts(ExperimentKind):
    name = "texts"
    item_noun = ("text", "texts")
    Params = TextsParams
    GenerateParams = TextsGenerate

    def __init__(self, params: TextsParams):
        super().__init__(params)
        if params.replace:
            self.edit = "remove"
            self.treatment = "Replacing every sequence of each {item}'s training windows with the {item}"

    @classmethod
    def check(cls, params: TextsParams, options: TextsGenerate | None) -> None:
        if params.replace and options is None:
            raise InputError(None, "params.replace", "expected items.generate (replacement documents come from the reserve region), got an items file")

    def _split(self, item: Item, tokens: Sequence[int]) -> Item:
        tokens = [int(t) for t in tokens]
        k = min(self.params.prefix_tokens, max(1, len(tokens) // 2))
        item.probe_tokens = tokens
        item.prompt_tokens = tokens[:k]
        item.target_tokens = tokens[k : k + self.params.continuation_tokens]
        return item

    def _room(self, context: PlanContext) -> int:
        """Most tokens per chunk: ``chunk_tokens``, at most what a sequence holds with its EOS wrappers."""
        room = context.reserve.window_tokens - 1 - EOS_WRAP if context.reserve is not None else None
        wanted = self.params.chunk_tokens
        if wanted is None:
            if room is None:
                raise InputError(None, "params.chunk_tokens", "expected a chunk size (the planner context gives no sequence length)")
            return room
        if room is not None and wanted > room:
            raise InputError(None, "params.chunk_tokens", f"expected at most seq_len - 2 = {room} tokens (a chunk and its EOS wrappers fit a sequence), got {wanted}")
        return wanted

    def _chunks(self, text: str, context: PlanContext, room: int) -> list[list[int]]:
        if self.params.split == "paragraphs":
            pieces = [p for p in PARAGRAPH_BREAK.split(text) if p.strip()]
        else:
            pieces = [text]
        chunks = []
        for piece in pieces:
            tokens = [int(t) for t in context.tokenizer.encode(piece)]
            chunks += [tokens[i : i + room] for i in range(0, len(tokens), room)]
        return chunks

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        key = self.params.key
        room = self._room(context)
        documents = []
        for line_no, record in enumerate(records, start=1):
            text = record.get(key)
            if key not in record:
                raise InputError(f"{path}:{line_no}", key, f"expected a string field {key!r} (set params.key for another field), got the keys {quote(sorted(record))}")
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{path}:{line_no}", key, "expected a non-empty string")
            document = str(record.get("id", f"{line_no - 1:06d}"))
            chunks = self._chunks(text, context, room)
            if not chunks:
                raise InputError(f"{path}:{line_no}", key, "expected a text with at least one token")
            documents.append((document, chunks, record_meta(record, (key, "id"))))
        if self.params.unit == "document":
            return [self._document(document, chunks, meta) for document, chunks, meta in documents]
        split = any(len(chunks) > 1 for _, chunks, _ in documents)
        items = []
        for document, chunks, meta in documents:
            for k, tokens in enumerate(chunks):
                source_id = document if len(chunks) == 1 else f"{document}.{k:03d}"
                item = Item(source_id=source_id, text=context.tokenizer.decode(tokens), payload_tokens=tokens,
                            stratum=document if split else None,
                            meta={**meta, "document": document, "chunk": k, "n_chunks": len(chunks)})
                items.append(self._split(item, tokens))
        return items

    def _document(self, document: str, chunks: list[list[int]], meta: dict[str, Any]) -> Item:
        """One item per document: its chunks are its payloads and its probe instances."""
        item = Item(source_id=document, meta={**meta, "n_chunks": len(chunks)})
        if len(chunks) == 1:
            item.payload_tokens = chunks[0]
            return self._split(item, chunks[0])
        item.payloads = [Payload(tokens=tokens) for tokens in chunks]
        instances = []
        for k, tokens in enumerate(chunks):
            probe = self._split(Item(source_id=document), tokens)
            instances.append(ProbeInstance(probe_tokens=probe.probe_tokens, prompt_tokens=probe.prompt_tokens,
                                           target_tokens=probe.target_tokens, meta={"chunk": k}))
        item.probe_instances = instances
        return item

    def generate(self, options: TextsGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        # each document opens its own reserve window, taken from the planner's allocator so
        # that no other use (a removal's replacement, another experiment) reads its tokens
        width = context.reserve.window_tokens if context.reserve is not None else 0
        if self.params.replace:
            return self._replacement_documents(options, rng, context, width)
        if options.n_tokens > width:
            raise InputError(None, "items.generate.n_tokens", f"expected at most a window's {width} tokens (seq_len + 1), got {options.n_tokens}")
        windows = context.take_reserve_windows("texts excerpts", options.n, rng)
        items = []
        for i, (window, window_tokens) in enumerate(windows):
            tokens = window_tokens[: options.n_tokens]
            item = Item(source_id=f"{i:06d}", text=context.tokenizer.decode(tokens), payload_tokens=tokens,
                        meta={"reserve_offset": window * width})
            items.append(self._split(item, tokens))
        return items

    def _replacement_documents(self, options: TextsGenerate, rng: np.random.Generator, context: PlanContext, width: int) -> list[Item]:
        """Whole reserve windows, each paired with ``copies`` training windows it replaces when treated."""
        windows = context.take_reserve_windows("texts replacement documents", options.n, rng)
        base = context.sample_run_windows(options.n * options.copies, rng)
        items = []
        for i, (window, tokens) in enumerate(windows):
            item = Item(source_id=f"{i:06d}", payload_tokens=tokens, replacement_window=window,
                        corpus_windows=base[i * options.copies : (i + 1) * options.copies],
                        meta={"reserve_offset": window * width, "copies": options.copies})
            # scored after an EOS, the probe holds the window's first seq_len - 1 tokens (a model's context)
            items.append(self._split(item, tokens[: width - 2]))
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [
            ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens", "min_k": self.params.min_k}),
            ProbeSpec("continue", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": self.params.continuation_tokens}),
        ]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [
            OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True, description="mean per-token loss of the text (nats)"),
            OutcomeSpec(name="min_k_logprob", probe="loss", column="min_k_logprob", type="continuous", expected_sign=+1, description="Min-K% log-prob membership score"),
            OutcomeSpec(name="zlib_ratio", probe="loss", column="zlib_ratio", type="continuous", expected_sign=-1, description="loss relative to zlib entropy (Carlini et al. 2021)"),
            OutcomeSpec(name="membership_auc", probe="loss", column="loss", type="continuous", expected_sign=-1, estimator="auc",
                        description="AUC of the loss as a membership score, trained against never-trained texts (0.5: chance)"),
            OutcomeSpec(name="membership_tpr", probe="loss", column="loss", type="continuous", expected_sign=-1, estimator="tpr_at_fpr",
                        description="share of trained texts detected by their loss at a 1% false-positive rate"),
            OutcomeSpec(name="verbatim", probe="continue", column="exact_match", type="binary", expected_sign=+1, baseline=0.0, description="greedy continuation reproduces the text exactly"),
        ]
