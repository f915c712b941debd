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

import numpy as np

from designkit.errors import InputError
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec
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

    def generate(self, options: VerbatimGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        p, s = self.params.prefix_tokens, self.params.suffix_tokens
        n_candidates = options.n * options.candidates_per_item
        starts, spans = context.sample_run_spans(n_candidates, p + s, rng)
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
            tokens = spans[candidate].astype(np.int32)
            occurrences = hits.occurrences.start[hits.occurrences.span == j]
            items.append(
                Item(
                    source_id=f"{len(items):05d}",
                    payload_tokens=tokens,
                    prompt_tokens=tokens[:p],
                    target_tokens=tokens[p:],
                    corpus_windows=hits.windows[j].tolist(),
                    meta={
                        "corpus_start": int(starts[candidate]),
                        "occurrences": int(len(occurrences)),
                        "trained_sequences": int(trained[j]),
                    },
                )
            )
        if len(items) < options.n:
            raise InputError(
                None, "items.generate.n",
                f"expected {options.n} spans trained at least {options.min_trained_sequences} times, in no reserve window and "
                f"sharing no window, found {len(items)} among {n_candidates} candidates (lower n or min_trained_sequences, or raise candidates_per_item)",
            )
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("complete", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": self.params.suffix_tokens})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [
            OutcomeSpec(name="completed", probe="complete", column="exact_match", type="binary", expected_sign=-1, baseline=None, primary=True,
                        description="greedy decoding from the prefix reproduces the whole suffix (removed minus kept)"),
            OutcomeSpec(name="completed_prefix", probe="complete", column="prefix_match", type="continuous", expected_sign=-1,
                        description="suffix tokens reproduced before the first mismatch (removed minus kept)"),
        ]
