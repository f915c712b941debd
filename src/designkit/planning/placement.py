"""Place every insertion at an exact (global_seq, offset), vectorised.

The ``d`` repetitions of an item with window ``[lo, hi)`` (in sequences) sit on a circle of
``d`` equal strata of the window: repetition ``r`` lands at ``(r + phase + jitter) / d`` of
the window (wrapping around), with one uniform ``phase`` per item and a jitter of at most a
quarter stratum per repetition. Each repetition is marginally uniform over the window,
consecutive repetitions are at least half a stratum apart (never bunched, never in one
sequence), and repetition numbers are finally given in time order.

Several insertions may share a sequence. Their order inside it is random, and the free
tokens are split into random gaps: a uniform draw over every non-overlapping layout of
those footprints. A sequence whose insertions do not fit (or that a whole-sequence edit
already owns) sends the insertions that overflow back to be redrawn within their strata.
Nothing here loops over placements in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from designkit.errors import InputError
from designkit.planning.permutation import BaseOrder

MAX_REDRAW_ROUNDS = 64


@dataclass(frozen=True)
class InsertionRequest:
    """Per-item arrays describing what to place (one entry per treated, inserted item)."""

    item_index: np.ndarray  # int32
    footprint: np.ndarray  # tokens the insertion covers, EOS wrappers included
    dose: np.ndarray
    window_lo: np.ndarray  # first sequence of the window
    window_hi: np.ndarray  # one past the last sequence


def window_sequences(window: tuple[float, float], n_sequences: int) -> tuple[int, int]:
    """The sequence range ``[lo, hi)`` of a window given as fractions of the run."""
    lo = int(np.floor(window[0] * n_sequences))
    hi = int(np.floor(window[1] * n_sequences))
    return lo, max(hi, lo + 1)


MAX_JITTER = 0.25  # of a stratum; keeps neighbouring repetitions at least half a stratum apart


def _draw_sequences(lo, width, dose, repetition, phase, rng, stratum=None) -> np.ndarray:
    """Sequence of each repetition: per-row arrays, or scalars shared by all rows (then no
    10M-row copy of them is made). Arithmetic is in place, one float64 row buffer in all."""
    stratum = np.divide(width, dose) if stratum is None else stratum
    # with strata narrower than two sequences, jitter could merge neighbours: go systematic
    position = rng.random(len(repetition))
    np.multiply(position, 2, out=position)
    np.subtract(position, 1, out=position)
    np.multiply(position, np.where(stratum >= 2, MAX_JITTER, 0.0), out=position)  # the jitter
    np.add(position, np.add(repetition, phase), out=position)
    np.mod(position, dose, out=position)
    np.multiply(position, stratum, out=position)
    np.floor(position, out=position)
    seq = position.astype(np.int64)
    del position
    np.minimum(seq, np.subtract(width, 1), out=seq)
    np.add(seq, lo, out=seq)
    return seq


def _per_row(values: np.ndarray, counts: np.ndarray, rows: np.ndarray | None, owner: np.ndarray):
    """``values[owner[rows]]``: a scalar when every item has the same value."""
    if len(values) and (values == values[0]).all():
        return values[0]
    if rows is None:
        return np.repeat(values, counts)
    return values[owner[rows]]


def _sort_order(keys: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Row indices sorting by ``keys`` (major first; non-negative ints, each with an exclusive
    upper bound), ties in row order.

    When the keys and the row number fit in 63 bits, one ``np.sort`` of packed int64 values
    does it: a SIMD sort of values is several times faster than a stable argsort of 10M rows.
    """
    n = len(keys[0][0])
    bits = [max(1, int(bound - 1).bit_length()) for _, bound in keys]
    row_bits = max(1, int(n - 1).bit_length())
    if sum(bits) > 62:
        return np.lexsort(tuple(values for values, _ in reversed(keys)))
    packed = np.zeros(n, dtype=np.int64)
    for (values, _), width in zip(keys, bits):
        np.left_shift(packed, width, out=packed)
        np.bitwise_or(packed, values, out=packed, casting="unsafe")
    if sum(bits) + row_bits > 63:
        return np.argsort(packed, kind="stable")
    np.left_shift(packed, row_bits, out=packed)
    np.bitwise_or(packed, np.arange(n, dtype=np.int64), out=packed)
    packed.sort()
    np.bitwise_and(packed, (1 << row_bits) - 1, out=packed)
    return packed


def _order_by(major: np.ndarray, minor: np.ndarray, minor_bound: int) -> np.ndarray:
    """Indices sorting by (major, minor) for non-negative ints (a stable sort)."""
    if len(major) == 0:
        return np.zeros(0, dtype=np.int64)
    return _sort_order([(major, int(major.max()) + 1), (minor, minor_bound)])


KEY_BOUND = 1 << 20  # random sort keys inside a sequence are drawn from [0, KEY_BOUND)
KEY_CHUNK = 1 << 22  # rows of keys drawn at a time


def _random_keys(rows: np.ndarray, n: int, rng) -> np.ndarray:
    """The random keys ``rng.integers(0, KEY_BOUND, n)`` of ``rows`` (ascending row numbers).

    Every row's key is drawn, so the generator moves exactly as with one draw for all ``n``
    rows (the planner's output, pinned by a test, depends on it), but only ``rows``' keys are
    kept. Drawn in chunks as int32: numpy yields the same values, and leaves the generator in
    the same state, as one int64 draw of ``n``.
    """
    keys = np.empty(len(rows), dtype=np.int32)
    for start in range(0, n, KEY_CHUNK):
        stop = min(n, start + KEY_CHUNK)
        drawn = rng.integers(0, KEY_BOUND, stop - start, dtype=np.int32)
        first, last = np.searchsorted(rows, (start, stop))
        keys[first:last] = drawn[rows[first:last] - start]
    return keys


def _random_order_within(seq: np.ndarray, rows: np.ndarray, seq_bound: int, rng) -> np.ndarray:
    """``rows`` sorted by sequence, in random order inside each sequence: a stable sort by
    (sequence, random key), with a key drawn for every one of ``len(seq)`` rows."""
    keys = _random_keys(rows, len(seq), rng)
    return rows[_sort_order([(seq[rows], seq_bound), (keys, KEY_BOUND)])]


def _sharing(seq: np.ndarray) -> np.ndarray:
    """Mask of placements whose sequence holds another placement (the only ones that can collide)."""
    mask = np.zeros(len(seq), dtype=bool)
    if len(seq) < 2:
        return mask
    order = _sort_order([(seq, int(seq.max()) + 1)])
    ordered = seq[order]
    same = ordered[1:] == ordered[:-1]
    mask[order[1:][same]] = True
    mask[order[:-1][same]] = True
    return mask


def _loads_within(seq_sorted: np.ndarray, footprint_sorted: np.ndarray) -> np.ndarray:
    """For rows sorted by sequence: tokens used in the row's sequence up to and including the row."""
    if len(seq_sorted) == 0:
        return np.zeros(0, dtype=np.int64)
    running = np.cumsum(footprint_sorted, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, seq_sorted[1:] != seq_sorted[:-1]])
    return running - np.repeat(running[starts] - footprint_sorted[starts], np.diff(np.r_[starts, len(seq_sorted)]))


def _overflowing(seq: np.ndarray, footprint: np.ndarray, seq_len: int, seq_bound: int, blocked: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Mask of placements to redraw (in a blocked sequence, or past a full sequence's capacity),
    and the mask of placements that share their sequence.

    A placement alone in its sequence always fits, so only sequences shared by several are
    ordered (randomly) and filled.
    """
    redraw = np.isin(seq, blocked) if len(blocked) else np.zeros(len(seq), dtype=bool)
    shared = _sharing(seq)
    order = _random_order_within(seq, np.flatnonzero(shared), seq_bound, rng)
    redraw[order[_loads_within(seq[order], footprint[order]) > seq_len]] = True
    return redraw, shared


def _pack_offsets(seq: np.ndarray, footprint: np.ndarray, seq_len: int, seq_bound: int, rng, shared: np.ndarray) -> np.ndarray:
    """Random non-overlapping offsets for placements that fit their sequences.

    Inside a sequence the placements come in random order with random gaps between them: the
    sorted uniform gap points in ``[0, free]`` give a uniform random composition of the free space.
    """
    n = len(seq)
    order = _random_order_within(seq, np.flatnonzero(shared), seq_bound, rng)
    # the k-th gap draw belongs to the k-th row in (sequence, random key) order over all rows:
    # rows alone in their sequence keep their place in sequence order, shared ones follow ``order``
    by_position = _sort_order([(seq, seq_bound)])
    by_position[shared[by_position]] = order
    gap_draw = np.empty(n)
    gap_draw[by_position] = rng.random(n)
    del by_position
    offsets = np.floor(gap_draw * (seq_len - footprint + 1)).astype(np.int32)  # a placement alone: one gap before it
    if len(order) == 0:
        return offsets
    seq_o = seq[order]
    fp_o = footprint[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, seq_o[1:] != seq_o[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    used_through = _loads_within(seq_o, fp_o)
    before = used_through - fp_o
    free = np.repeat(seq_len - used_through[np.r_[starts[1:], len(order)] - 1], sizes)
    gaps = np.floor(gap_draw[order] * (free + 1)).astype(np.int64)
    gap_bits = max(1, int(seq_len).bit_length())
    packed = (np.repeat(np.arange(len(starts), dtype=np.int64), sizes) << gap_bits) | gaps  # sort gaps within each sequence
    packed.sort()
    gaps_sorted = packed & ((1 << gap_bits) - 1)
    offsets[order] = gaps_sorted + before
    return offsets


def place_insertions(
    request: InsertionRequest,
    *,
    n_sequences: int,
    seq_len: int,
    rng: np.random.Generator,
    blocked_sequences: np.ndarray | None = None,
    explicit: dict[int, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Placements for every repetition of every requested item, sorted by sequence and offset.

    ``explicit`` maps an item index to its given global sequences; those are not drawn.
    """
    blocked = np.unique(np.asarray(blocked_sequences if blocked_sequences is not None else [], dtype=np.int64))
    dose = request.dose.astype(np.int64)
    width = (request.window_hi - request.window_lo).astype(np.int64)
    too_big = np.flatnonzero(request.footprint > seq_len)
    if len(too_big):
        i = too_big[0]
        raise InputError(None, f"item {int(request.item_index[i])}", f"expected at most seq_len={seq_len} tokens with EOS wrappers, got {int(request.footprint[i])}")
    crowded = np.flatnonzero(dose > width)
    if len(crowded):
        i = crowded[0]
        raise InputError(None, f"item {int(request.item_index[i])}", f"expected a window of at least dose={int(dose[i])} sequences, got {int(width[i])}")

    columns = ("global_seq", "offset", "n_tokens", "item_index", "repetition")
    if int(dose.sum()) == 0:  # e.g. a design of placebos only
        return pd.DataFrame({c: np.zeros(0, dtype=np.int64 if c == "global_seq" else np.int32) for c in columns})
    if int(dose.sum()) >= 1 << 31:
        raise InputError(None, "arms", f"expected fewer than 2**31 insertions in one plan, got {int(dose.sum()):,}")
    # per-placement arrays are narrow (a placement costs ~40 bytes here, not ~300), and per-item
    # quantities are gathered only where a formula needs them
    first_row = np.cumsum(dose) - dose
    owner = np.repeat(np.arange(len(dose), dtype=np.int32), dose)
    repetition = np.arange(len(owner), dtype=np.int32)
    repetition -= np.repeat(first_row.astype(np.int32), dose)
    lo, stratum_of = request.window_lo.astype(np.int64), width / dose
    phase = rng.random(len(dose))

    def draw(rows: np.ndarray | None, owner: np.ndarray, repetition: np.ndarray) -> np.ndarray:
        def per_row(values):
            return _per_row(values, dose, rows, owner)

        rep = repetition if rows is None else repetition[rows]
        return _draw_sequences(per_row(lo), per_row(width), per_row(dose), rep, per_row(phase), rng, per_row(stratum_of))

    seq = draw(None, owner, repetition)
    fixed = np.zeros(len(owner), dtype=bool)
    if explicit:
        for item_pos, sequences in explicit.items():
            rows = first_row[item_pos] + np.arange(dose[item_pos])
            seq[rows] = np.asarray(sequences, dtype=np.int64)
            fixed[rows] = True
    footprint = request.footprint.astype(np.int32)[owner]

    for _ in range(MAX_REDRAW_ROUNDS):
        redraw, shared = _overflowing(seq, footprint, seq_len, n_sequences, blocked, rng)
        if not redraw.any():
            break
        if (redraw & fixed).any():
            i = int(request.item_index[owner[np.flatnonzero(redraw & fixed)[0]]])
            raise InputError(None, f"item {i}", "expected explicit positions that fit their sequences without overlapping other edits")
        rows = np.flatnonzero(redraw)
        seq[rows] = draw(rows, owner, repetition)
    else:
        raise InputError(None, "arms", f"expected room for every insertion; windows are too crowded after {MAX_REDRAW_ROUNDS} redraws (lower doses or widen windows)")

    offsets = _pack_offsets(seq, footprint, seq_len, n_sequences, rng, shared)  # shared: of the final, fitting draw
    repetition = _time_ranks(owner, seq, repetition, first_row, dose, n_sequences)  # each item's repetitions in time order
    order = _sort_order([(seq, n_sequences), (offsets, seq_len)])
    # reorder one column at a time, each source freed before the next copy is made
    columns = {"global_seq": seq, "offset": offsets, "n_tokens": footprint, "item_index": owner, "repetition": repetition}
    del seq, offsets, footprint, owner, repetition
    for name in columns:
        columns[name] = columns[name][order]
    columns["item_index"] = request.item_index.astype(np.int32)[columns["item_index"]]
    return pd.DataFrame(columns, copy=False)


def _time_ranks(owner: np.ndarray, seq: np.ndarray, local: np.ndarray, first_row: np.ndarray, dose: np.ndarray, n_sequences: int) -> np.ndarray:
    """Rank of each row among its item's rows by sequence (an item's rows are one contiguous block).

    Sorted by (item, sequence, row in block), the rows of item ``i`` fill the same block, so a
    row's rank is its position in the block; the packed value itself names the row.
    """
    seq_bits, local_bits = max(1, int(n_sequences - 1).bit_length()), max(1, int(dose.max() - 1).bit_length())
    ranks = np.empty(len(owner), dtype=np.int32)
    if max(1, int(len(dose) - 1).bit_length()) + seq_bits + local_bits > 63:
        ranks[np.lexsort((local, seq, owner))] = local
        return ranks
    packed = owner.astype(np.int64)
    np.left_shift(packed, seq_bits, out=packed)
    np.bitwise_or(packed, seq, out=packed)
    np.left_shift(packed, local_bits, out=packed)
    np.bitwise_or(packed, local, out=packed)
    packed.sort()
    sorted_owner = packed >> (seq_bits + local_bits)
    ranks[first_row[sorted_owner] + (packed & ((1 << local_bits) - 1))] = local
    return ranks


@dataclass(frozen=True)
class WholeSequenceRequest:
    """Per-window arrays of whole-sequence (remove/noise) items: one row per training-region
    window an item occupies (an item may occupy several; a window belongs to one item)."""

    item_index: np.ndarray  # int32
    corpus_window: np.ndarray  # int64, distinct
    edited: np.ndarray  # bool: treated (edited) or a control (its sequences only kept free of insertions)
    window_lo: np.ndarray  # first sequence of the arm's window of the run
    window_hi: np.ndarray  # one past the last


def place_whole_sequences(
    request: WholeSequenceRequest, order: BaseOrder, *, n_sequences: int, seq_len: int, stream_offset: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """An edit for every sequence in an edited item's window that reads the item's corpus
    window, and the sequences of every item (edited or control) that insertions must avoid.

    Repetition ``r`` is the item's ``r``-th edited visit in time order (over all its windows). Offsets are 0 and
    ``n_tokens`` is ``seq_len + 1``: the edit owns the whole window.
    """
    windows = np.asarray(request.corpus_window, dtype=np.int64)
    if len(np.unique(windows)) != len(windows):
        raise ValueError("whole-sequence items must be distinct corpus windows")
    which, base = order.sequences_reading(windows, stream_offset, stream_offset + n_sequences)
    seq = base - stream_offset
    blocked = np.unique(seq)
    keep = request.edited[which] & (seq >= request.window_lo[which]) & (seq < request.window_hi[which])
    which, seq = which[keep], seq[keep]
    item = request.item_index[which].astype(np.int64)
    by_item = _order_by(item, seq, n_sequences)  # each item's visits in time order
    first = np.searchsorted(item[by_item], item[by_item], side="left")
    repetition = np.empty(len(seq), dtype=np.int32)
    repetition[by_item] = np.arange(len(seq)) - first
    frame = pd.DataFrame(
        {
            "global_seq": seq.astype(np.int64),
            "offset": np.zeros(len(seq), dtype=np.int32),
            "n_tokens": np.full(len(seq), seq_len + 1, dtype=np.int32),
            "item_index": request.item_index[which].astype(np.int32),
            "repetition": repetition,
        }
    )
    return frame, blocked


def check_placements(placements: pd.DataFrame, *, seq_len: int, n_sequences: int) -> str | None:
    """The first violated invariant of a placements table, or None. Vectorised."""
    seq = placements["global_seq"].to_numpy()
    off = placements["offset"].to_numpy().astype(np.int64)
    n = placements["n_tokens"].to_numpy().astype(np.int64)
    if len(seq) == 0:
        return None
    def is_edit(name: str) -> np.ndarray:
        return (placements["edit"] == name).to_numpy() if "edit" in placements else np.zeros(len(seq), dtype=bool)

    # a whole-window edit (remove, or noise on all seq_len + 1 positions) owns its sequence;
    # insertions and span noise cover [offset, offset + n_tokens) of the seq_len input positions
    whole = is_edit("remove") | (is_edit("noise") & (off == 0) & (n == seq_len + 1))
    spans = ~whole
    if (seq < 0).any() or (seq >= n_sequences).any():
        return "global_seq outside the run"
    if np.any((seq[1:] < seq[:-1]) | ((seq[1:] == seq[:-1]) & (off[1:] < off[:-1]))):
        return "rows not sorted by (global_seq, offset)"
    if (off[spans] < 0).any() or (n[spans] < 1).any() or (off[spans] + n[spans] > seq_len).any():
        return "an insertion straddles its sequence"
    same = seq[1:] == seq[:-1]
    if np.any(same & (off[:-1] + n[:-1] > off[1:])):
        return "two edits overlap"
    if whole.any():
        shared = np.isin(seq[whole], seq[np.r_[same, False] | np.r_[False, same]])
        if shared.any():
            return "a whole-sequence edit shares its sequence"
    return None
