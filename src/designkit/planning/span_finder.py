"""Where token spans occur in a corpus, and which training sequences read them (MemV removal).

Verbatim-memorization-after-removal (Bordt & Pawelczyk 2025, MemV) needs every place the
run trains a span, not only one: a 50-token span may recur in the corpus (boilerplate,
duplicated documents), and an occurrence may straddle the boundary of two training windows,
so each window holds part of it. Three steps:

1. ``find_span_starts``: every corpus position where a span starts. One rolling
   polynomial hash of every length-``L`` window (``ngram_scan.WindowHasher``: one
   cumulative sum per chunk, numpy's wrapping uint64 arithmetic) passes a table of the
   spans' top hash bits, is looked up in the spans' sorted hashes, and every hash hit is
   confirmed token by token, so a collision can never report an occurrence.
2. ``touched_windows``: the ``(seq_len + 1)``-token training windows an occurrence overlaps
   (two when it straddles a boundary; an occurrence in the never-read tail of the training
   region touches none).
3. ``BaseOrder.sequences_reading`` (the permutation's inverse): every global sequence, in
   every epoch, that trains one of those windows.

Torch-free and vectorised: the work per corpus token is a few numpy operations on 64k-token
chunks (``benchmarks/span_finder.py`` prints the rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from designkit.planning.ngram_scan import CHUNK_WINDOWS, WindowHasher
from designkit.planning.permutation import BaseOrder


@dataclass(frozen=True)
class SpanOccurrences:
    """Occurrences, sorted by (start, span): span ``span[i]`` starts at corpus token ``start[i]``."""

    span: np.ndarray  # int64 index into the spans
    start: np.ndarray  # int64 corpus token position

    def __len__(self) -> int:
        return len(self.start)


def _as_span_matrix(spans) -> np.ndarray:
    matrix = np.asarray(spans, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise ValueError(f"expected spans as a (n_spans, length) array of equal-length token spans, got shape {matrix.shape}")
    return matrix


def find_span_starts(
    tokens: np.ndarray,
    spans,
    *,
    start: int = 0,
    stop: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SpanOccurrences:
    """Every occurrence of each span in ``tokens[start:stop]`` (positions are of ``tokens``).

    ``tokens`` may be a memmap: it is read in chunks of ``CHUNK_WINDOWS`` windows.
    """
    matrix = _as_span_matrix(spans)
    n_spans, length = matrix.shape
    stop = len(tokens) if stop is None else min(int(stop), len(tokens))
    empty = SpanOccurrences(np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n_spans == 0 or stop - start < length:
        return empty
    hasher = WindowHasher(length)
    span_hashes = np.array([hasher.all(row)[0] for row in matrix], dtype=np.uint64)
    order = np.argsort(span_hashes, kind="stable")
    sorted_hashes = span_hashes[order]
    # prefilter: a table of the spans' top hash bits (~64 slots per span) passes ~1.5% of
    # random windows, so the binary search runs on few windows
    table_bits = int(min(26, max(16, (64 * n_spans - 1).bit_length())))
    shift = np.uint64(64 - table_bits)
    table = np.zeros(1 << table_bits, dtype=bool)
    table[(span_hashes >> shift).astype(np.int64)] = True
    found_span, found_start = [], []
    last_window = stop - length + 1  # one past the last window start
    for chunk_start in range(start, last_window, CHUNK_WINDOWS):
        chunk_stop = min(chunk_start + CHUNK_WINDOWS, last_window)
        piece = np.asarray(tokens[chunk_start : chunk_stop + length - 1])
        hashes = hasher.chunk(piece)
        passing = np.flatnonzero(table[hashes >> shift])
        lo = np.searchsorted(sorted_hashes, hashes[passing], side="left")
        hi = np.searchsorted(sorted_hashes, hashes[passing], side="right")
        matched = hi > lo
        hit, lo, hi = passing[matched], lo[matched], hi[matched]
        if hit.size:
            # a hash may match several spans (equal or colliding spans): one candidate per pair
            counts = hi - lo
            offsets = np.repeat(hit, counts)
            ranks = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
            candidates = order[ranks]
            same = (piece[offsets[:, None] + np.arange(length)] == matrix[candidates]).all(axis=1)
            found_span.append(candidates[same])
            found_start.append(offsets[same] + chunk_start)
        if progress is not None:
            progress(chunk_stop - chunk_start)
    if not found_start:
        return empty
    span_a, start_a = np.concatenate(found_span), np.concatenate(found_start)
    by = np.lexsort((span_a, start_a))
    return SpanOccurrences(span_a[by].astype(np.int64), start_a[by].astype(np.int64))


def touched_windows(starts: np.ndarray, length: int, window_tokens: int, n_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(occurrence, window)`` for every training window an occurrence overlaps.

    An occurrence ``[s, s + length)`` overlaps windows ``s // W`` to ``(s + length - 1) // W``
    (``W = seq_len + 1``), two or more when it straddles a boundary; windows ``>= n_windows``
    (the training region's never-read tail) are dropped.
    """
    starts = np.asarray(starts, dtype=np.int64)
    first = starts // window_tokens
    count = (starts + length - 1) // window_tokens - first + 1
    occurrence = np.repeat(np.arange(len(starts)), count)
    window = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    keep = window < n_windows
    return occurrence[keep], window[keep]


@dataclass(frozen=True)
class SpanHits:
    """Everything training reads of each span: its occurrences, the windows they touch, and
    the global sequences that train those windows."""

    occurrences: SpanOccurrences
    windows: list[np.ndarray]  # per span: sorted distinct training windows touched
    sequences: list[np.ndarray]  # per span: sorted global sequences reading one of its windows
    in_reserve: np.ndarray | None = None  # per span: it also occurs in the reserve region (when asked)

    def n_trained(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences], dtype=np.int64)


def find_span_hits(
    tokens: np.ndarray,
    spans,
    *,
    window_tokens: int,
    order: BaseOrder,
    n_sequences: int,
    stream_offset: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SpanHits:
    """Occurrences of ``spans`` in the training region (``order.n_windows`` windows of
    ``window_tokens`` tokens from token 0), their windows, and every global sequence in
    ``[0, n_sequences)`` that trains one of them."""
    matrix = _as_span_matrix(spans)
    region = order.n_windows * window_tokens
    occurrences = find_span_starts(tokens, matrix, stop=region, progress=progress)
    occurrence, window = touched_windows(occurrences.start, matrix.shape[1], window_tokens, order.n_windows)
    span_of = occurrences.span[occurrence]
    windows = [np.unique(window[span_of == i]) for i in range(len(matrix))]
    all_windows = np.unique(window)
    which, base = order.sequences_reading(all_windows, stream_offset, stream_offset + n_sequences)
    seq_of_window = {}
    if len(which):
        by_window = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[by_window], np.arange(len(all_windows) + 1))
        for j, w in enumerate(all_windows.tolist()):
            seq_of_window[w] = base[by_window[bounds[j] : bounds[j + 1]]] - stream_offset
    sequences = [
        np.unique(np.concatenate([seq_of_window.get(w, np.zeros(0, np.int64)) for w in ws.tolist()] or [np.zeros(0, np.int64)]))
        for ws in windows
    ]
    return SpanHits(occurrences=occurrences, windows=windows, sequences=sequences)
