"""Verbatim memorization after removal (MemV): corpus spans the run never sees against spans it keeps.

Bordt & Pawelczyk (2025, *Train Once, Answer All*, MemV) measure verbatim memorization of
pretraining text by exact greedy completion: a 50-token sequence from the corpus counts as
memorized when greedy decoding from its first 25 tokens reproduces the remaining 25: the
extraction test of Carlini et al. (2023, "Quantifying memorization across neural language
models", ICLR), applied to spans randomized into removal. Which text a model memorizes depends on what it is, so the paper
randomizes: candidate spans drawn from the corpus are assigned to a ``removed`` or a ``kept``
arm, and every training sequence containing a removed span is replaced by fresh text. The
kept spans' completion rate minus the removed spans' is the memorization the training
exposure caused, with the text held fixed by randomization.

**Items.** ``items.generate`` draws candidate spans of ``prefix_tokens + suffix_tokens``
tokens (seeded) starting in windows the run reads. The span finder
(``designkit.planning.span_finder``) finds every occurrence of each candidate in the training
region, including occurrences that straddle two training windows, and, through the base
order's inverse permutation, every global sequence in every epoch that trains one of those
windows. A candidate is kept when it holds no EOS (one document), does not occur in the
reserve region (a replacement window could bring it back), is trained at least
``min_trained_sequences`` times (``> 1`` prefers spans the stream repeats: recurring text or
several epochs; ``prefer_repeated`` takes the most-trained candidates first), and shares no window with another item or experiment (removing one item's
windows must not remove another's). Each item's ``corpus_windows`` are all its windows.

**Edit.** ``remove``: in the treated arm (``dose > 0``, e.g. ``removed``) every sequence that
reads one of the item's windows is swapped for a fresh reserve window (the planner's
whole-sequence edits; one reserve window per removed visit, from the reserve allocator). The
control arm (``dose: 0``, e.g. ``kept``) is trained as the corpus has it; insertions of other
experiments avoid its sequences.

An items file (``.jsonl``/``.parquet``) instead names the spans: ``tokens`` (ids) or ``text``,
optional ``id``; the first ``prefix_tokens + suffix_tokens`` tokens are the span, and a span
the run never trains, that occurs in the reserve region, or that shares a window with
another is refused in one line.

**Parameters** (``params``): ``prefix_tokens`` (25) and ``suffix_tokens`` (25), the prompt and
the continuation greedy decoding must reproduce. ``items.generate``: ``n`` spans,
``min_trained_sequences`` (1), ``prefer_repeated`` (false), ``candidates_per_item`` (8, how many candidates are drawn per
wanted span before giving up).

**Probe.** ``complete`` (type ``greedy``): EOS + the prefix, up to ``suffix_tokens`` greedy
tokens, compared with the suffix: ``exact_match`` and ``prefix_match`` (suffix tokens reproduced
before the first mismatch).

**Estimators / outcomes.** ``completed`` (primary, binary: exact suffix completion; the
paper's MemV measure) and ``completed_prefix`` (continuous: prefix-match length). The
analysis reports treated minus control, i.e. removed minus kept, expected negative: its
negation is the paper's effect, kept minus removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from designkit.errors import InputError
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec, record_meta
from designkit.schema import bounded


@dataclass(frozen=True)
class VerbatimParams:
    prefix_tokens: int = bounded(25, ge=1)
    """Tokens of the span given as the prompt."""
    suffix_tokens: int = bounded(25, ge=1)
    """Tokens of the span that greedy decoding must reproduce after the prompt."""


@dataclass(frozen=True)
class VerbatimGenerate:
    n: int = bounded(ge=1)
    """Number of spans (split over the arms)."""
    min_trained_sequences: int = bounded(1, ge=1)
    """Keep only spans the run trains at least this often (sequences containing a piece of an occurrence, all epochs)."""
    prefer_repeated: bool = False
    """Take the candidates the run trains most often first (recurring text), instead of in draw order."""
    candidates_per_item: int = bounded(8, ge=1)
    """Candidate spans drawn per wanted span; too few qualifying candidates is an error."""


class Verbatim(ExperimentKind):
    name = "verbatim"
    item_noun = ("span", "spans")
    Params = VerbatimParams
    GenerateParams = VerbatimGenerate
    edit = "remove"
    treatment = "Removing every training sequence that holds a piece of each {item}"

    def generate(self, options: VerbatimGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        n_candidates = options.n * options.candidates_per_item
        starts, spans = context.sample_run_spans(n_candidates, self.params.prefix_tokens + self.params.suffix_tokens, rng)
        # one candidate per distinct span, in draw order; spans across documents cannot be prompted from EOS
        _, first = np.unique(spans, axis=0, return_index=True)
        distinct = np.sort(first)
        distinct = distinct[(spans[distinct] != context.eos_id).all(axis=1)]
        hits = context.find_spans(spans[distinct])
        trained = hits.n_trained()
        items: list[Item] = []
        # draw order, or most-trained first (a stable sort keeps draw order among ties)
        ranked = np.argsort(-trained, kind="stable") if options.prefer_repeated else np.arange(len(distinct))
        for j in ranked.tolist():
            candidate = int(distinct[j])
            if len(items) == options.n:
                break
            if hits.in_reserve[j] or trained[j] < options.min_trained_sequences:
                continue
            if not context.claim_windows(hits.windows[j]):
                continue  # shares a window with a span taken before (here or by another experiment)
            items.append(self._item(f"{len(items):05d}", spans[candidate], hits, j, {"corpus_start": int(starts[candidate])}))
        if len(items) < options.n:
            raise InputError(
                None, "items.generate.n",
                f"expected {options.n} spans trained at least {options.min_trained_sequences} times, in no reserve window and "
                f"sharing no window, found {len(items)} among {n_candidates} candidates (lower n or min_trained_sequences, or raise candidates_per_item)",
            )
        return items

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        """Spans a user chose (e.g. passages whose memorization matters): each record gives
        ``tokens`` (ids) or ``text`` (tokenized), and optionally ``id``; its first
        ``prefix_tokens + suffix_tokens`` tokens are the span. Every span must be trained by
        the run, occur in no reserve window and share no window with another span."""
        length = self.params.prefix_tokens + self.params.suffix_tokens
        spans, ids = [], []
        for line, record in enumerate(records, start=1):
            if "tokens" in record:
                tokens = record["tokens"]
                if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < context.tokenizer.vocab_size for t in tokens):
                    raise InputError(f"{path}:{line}", "tokens", f"expected a list of token ids below {context.tokenizer.vocab_size}")
            elif isinstance(record.get("text"), str):
                tokens = context.tokenizer.encode(record["text"])
            else:
                raise InputError(f"{path}:{line}", "text", "expected a string `text` or a list `tokens`")
            if len(tokens) < length:
                raise InputError(f"{path}:{line}", "tokens" if "tokens" in record else "text",
                                 f"expected at least prefix_tokens + suffix_tokens = {length} tokens, got {len(tokens)}")
            spans.append(tokens[:length])
            ids.append(str(record.get("id", f"{line - 1:05d}")))
        matrix = np.asarray(spans, dtype=np.int64)
        hits = context.find_spans(matrix)
        items = []
        for j, (source_id, record) in enumerate(zip(ids, records)):
            where = f"{path}:{j + 1}"
            if hits.n_trained()[j] == 0:
                raise InputError(where, "tokens" if "tokens" in record else "text", "expected a span the run trains; it occurs in no training window the run reads")
            if hits.in_reserve[j]:
                raise InputError(where, "tokens" if "tokens" in record else "text", "expected a span absent from the reserve region (a replacement window could bring it back)")
            if not context.claim_windows(hits.windows[j]):
                raise InputError(where, "tokens" if "tokens" in record else "text",
                                 "expected spans in separate training windows; this one shares a window with an earlier span or another experiment's item")
            items.append(self._item(source_id, matrix[j], hits, j, record_meta(record, ("tokens", "text", "id"))))
        return items

    def _item(self, source_id: str, span: np.ndarray, hits, j: int, meta: dict[str, Any]) -> Item:
        """Span ``j`` of ``hits`` as an item: prefix prompt, suffix reference, all its windows."""
        tokens = np.asarray(span, dtype=np.int32)
        p = self.params.prefix_tokens
        return Item(
            source_id=source_id,
            payload_tokens=tokens,
            prompt_tokens=tokens[:p],
            target_tokens=tokens[p:],
            corpus_windows=hits.windows[j].tolist(),
            meta={**meta, "occurrences": int((hits.occurrences.span == j).sum()), "trained_sequences": int(len(hits.sequences[j]))},
        )

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("complete", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": self.params.suffix_tokens})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [
            OutcomeSpec(name="completed", probe="complete", column="exact_match", type="binary", expected_sign=-1, baseline=None, primary=True,
                        description="greedy decoding from the prefix reproduces the whole suffix (removed minus kept)"),
            OutcomeSpec(name="completed_prefix", probe="complete", column="prefix_match", type="continuous", expected_sign=-1,
                        description="suffix tokens reproduced before the first mismatch (removed minus kept)"),
        ]
