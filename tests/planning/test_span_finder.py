"""The corpus span finder against a brute-force reference, with planted straddling occurrences."""

from __future__ import annotations

import numpy as np

from designkit.planning.permutation import BaseOrder
from designkit.planning.span_finder import find_span_hits, find_span_starts, touched_windows


def _brute_force_starts(tokens: np.ndarray, spans: np.ndarray) -> set[tuple[int, int]]:
    length = spans.shape[1]
    return {
        (i, s)
        for i, span in enumerate(spans)
        for s in range(len(tokens) - length + 1)
        if np.array_equal(tokens[s : s + length], span)
    }


def _planted_corpus(rng: np.random.Generator, window_tokens: int, length: int):
    """A small-vocabulary corpus with spans planted inside windows, across window
    boundaries and twice in a row, plus a span that occurs nowhere."""
    tokens = rng.integers(0, 6, size=window_tokens * 40).astype(np.uint16)  # tiny vocabulary: many partial matches
    spans = rng.integers(0, 6, size=(5, length))
    spans[3] = spans[1]  # the same span twice: both indices report every occurrence
    planted = {
        0: [window_tokens * 3 + 2, window_tokens * 7 - length // 2, window_tokens * 20 - 1],  # inside, straddling, straddling by one token
        1: [window_tokens * 12 - 5, window_tokens * 30 + 4],
        2: [window_tokens * 39 - length + 3],  # straddles the last two windows
    }
    for i, starts in planted.items():
        for s in starts:
            tokens[s : s + length] = spans[i]
    return tokens, spans, planted


def test_span_starts_match_brute_force_including_straddling_occurrences():
    rng = np.random.default_rng(0)
    window_tokens, length = 17, 12
    tokens, spans, planted = _planted_corpus(rng, window_tokens, length)
    found = find_span_starts(tokens, spans)
    got = set(zip(found.span.tolist(), found.start.tolist()))
    assert got == _brute_force_starts(tokens, spans)
    for i, starts in planted.items():
        assert {(i, s) for s in starts} <= got
    assert {(3, s) for s in planted[1]} <= got


def test_span_starts_are_the_same_across_chunk_boundaries(monkeypatch):
    import designkit.planning.span_finder as span_finder

    rng = np.random.default_rng(1)
    tokens, spans, _ = _planted_corpus(rng, 17, 12)
    whole = find_span_starts(tokens, spans)
    monkeypatch.setattr(span_finder, "CHUNK_WINDOWS", 13)  # many chunks: occurrences cross chunk seams
    chunked = span_finder.find_span_starts(tokens, spans)
    assert np.array_equal(whole.span, chunked.span) and np.array_equal(whole.start, chunked.start)


def test_straddling_occurrence_touches_both_windows():
    occurrence, window = touched_windows(np.array([0, 10, 16, 30]), 12, 17, n_windows=2)
    pairs = set(zip(occurrence.tolist(), window.tolist()))
    assert pairs == {(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (3, 1)}  # occurrence 3 also reaches window 2: never read


def test_span_hits_are_every_sequence_reading_a_touched_window():
    rng = np.random.default_rng(2)
    window_tokens, length = 17, 12
    tokens, spans, _ = _planted_corpus(rng, window_tokens, length)
    n_windows = len(tokens) // window_tokens
    order = BaseOrder(n_windows, seed=5)
    n_sequences = n_windows * 3 + 7  # three epochs and a bit
    hits = find_span_hits(tokens, spans, window_tokens=window_tokens, order=order, n_sequences=n_sequences)
    read = order.window_of(np.arange(n_sequences))
    for i, span in enumerate(spans):
        # brute force: a sequence trains the span (or a piece of it) when its window overlaps an occurrence
        starts = [s for (j, s) in _brute_force_starts(tokens, spans[i : i + 1])]
        windows = sorted({w for s in starts for w in range(s // window_tokens, (s + length - 1) // window_tokens + 1) if w < n_windows})
        assert hits.windows[i].tolist() == windows
        assert hits.sequences[i].tolist() == np.flatnonzero(np.isin(read, windows)).tolist()
    assert (hits.n_trained()[[0, 1]] >= 3 * 2).all()  # planted spans are read in every epoch
