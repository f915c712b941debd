"""Exact n-gram search of a token corpus for the n-grams of a plan's items, at corpus scale.

A 210B-token corpus against millions of item n-grams has to run at tens of millions of
tokens per second per core. Three stages keep numpy busy on whole chunks and touch
almost nothing twice:

1. **Hash every window in O(1) passes, whatever n.** The polynomial hash
   ``h = sum_k t[i+k] * B**(n-1-k) mod 2**64`` of every window comes from one cumulative
   sum of ``t[j] * B**-j`` (``B`` is odd, so it has an inverse mod 2**64): the window sum
   is a difference of two prefix sums, re-based by one multiply. numpy's uint64 arithmetic
   wraps, which is exactly mod 2**64.
2. **Prefilter with two bitmaps** of the item hashes' bits (a Bloom filter with two
   hashes, applied one after the other): a small one (8 bits per item n-gram, so a random
   gather mostly hits the CPU cache) passes at most 12% of corpus windows, a large one (64 bits
   per n-gram) checks only those, and under 0.2% of windows reach the exact stage (sizes round up to powers of two).
3. **Exact membership.** A passing hash is looked up in the sorted item hashes, and every
   hash match is confirmed by comparing the tokens themselves, so a hash collision can
   never report a hit.

Windows are addressed by their start position; a range of window starts ``[a, b)`` reads
tokens ``[a, b + n - 1)``, so ranges that tile the window starts see every n-gram once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASE = 0x100000001B3  # FNV-1 64-bit prime: odd, so invertible mod 2**64
_MOD = 1 << 64
CHUNK_WINDOWS = 1 << 16  # keeps a chunk's uint64 temporaries inside a core's L2 cache
BITS_PER_NGRAM = (8, 64)  # the first (small, cache-friendly) and the second bitmap
MIN_BITMAP_BITS, MAX_BITMAP_BITS = 1 << 12, 1 << 31
TASK_WINDOWS = 1 << 23  # unit of work handed to a worker process

Ranges = list[tuple[int, int]]


def _powers(base: int, count: int, first_exponent: int = 0) -> np.ndarray:
    """``base ** (first_exponent + i) mod 2**64`` for ``i < count``, by repeated doubling."""
    out = np.empty(max(count, 1), dtype=np.uint64)
    out[0] = pow(base, first_exponent, _MOD)
    filled = 1
    with np.errstate(over="ignore"):
        while filled < count:
            step = min(filled, count - filled)
            np.multiply(out[:step], np.uint64(pow(base, filled, _MOD)), out=out[filled : filled + step])
            filled += step
    return out[:count]


class WindowHasher:
    """Hashes of every length-``n`` window of token arrays, ``CHUNK_WINDOWS`` windows at a time.

    The returned array is a view of a buffer that the next call overwrites.
    """

    def __init__(self, n: int, base: int = BASE, max_windows: int = CHUNK_WINDOWS):
        self.n, self.base, self.max_windows = n, base, max_windows
        inverse = pow(base, -1, _MOD)
        self._down = _powers(inverse, max_windows + n - 1)  # B**-j
        self._up = _powers(base, max_windows, n - 1)  # B**(i+n-1)
        self._terms = np.empty(max_windows + n - 1, dtype=np.uint64)
        self._prefix = np.zeros(max_windows + n, dtype=np.uint64)
        self._out = np.empty(max_windows, dtype=np.uint64)

    def chunk(self, tokens: np.ndarray) -> np.ndarray:
        """Hashes of the windows of ``tokens`` (at most ``max_windows + n - 1`` tokens)."""
        m, n = len(tokens), self.n
        count = m - n + 1
        if count <= 0:
            return self._out[:0]
        terms, prefix, out = self._terms[:m], self._prefix, self._out[:count]
        with np.errstate(over="ignore"):
            np.multiply(tokens, self._down[:m], out=terms, dtype=np.uint64, casting="unsafe")
            np.cumsum(terms, out=prefix[1 : m + 1])
            np.subtract(prefix[n : m + 1], prefix[:count], out=out)
            np.multiply(out, self._up[:count], out=out)
        return out

    def all(self, tokens: np.ndarray) -> np.ndarray:
        """Hashes of every window of ``tokens`` of any length (a new array)."""
        tokens = np.asarray(tokens)
        count = len(tokens) - self.n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint64)
        out = np.empty(count, dtype=np.uint64)
        for start in range(0, count, self.max_windows):
            stop = min(start + self.max_windows, count)
            out[start:stop] = self.chunk(tokens[start : stop + self.n - 1])
        return out


def ngram_hashes(tokens: np.ndarray, n: int, base: int = BASE) -> np.ndarray:
    """Hash of every length-``n`` window of ``tokens`` (empty if shorter than ``n``)."""
    return WindowHasher(n, base, max_windows=max(1, min(CHUNK_WINDOWS, len(tokens)))).all(tokens)


def _windows(tokens: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    return tokens[starts[:, None] + np.arange(n)]


@dataclass(frozen=True)
class NgramTable:
    """The distinct n-grams of all items (distinct by their tokens, not their hash).

    Entry ``e`` has hash ``hashes[e]`` (sorted; equal only for colliding n-grams), its tokens
    at ``payload[first[e] : first[e] + n]``, and belongs to items
    ``owners[owner_ptr[e] : owner_ptr[e + 1]]``.
    """

    n: int
    base: int
    payload: np.ndarray
    hashes: np.ndarray
    first: np.ndarray
    owner_ptr: np.ndarray
    owners: np.ndarray
    filters: tuple[HashBitmap, HashBitmap]

    @classmethod
    def build(cls, payload_tokens: np.ndarray, payload_index: np.ndarray, n: int, *, base: int = BASE) -> NgramTable:
        payload = np.ascontiguousarray(payload_tokens)
        index = np.asarray(payload_index, dtype=np.int64)
        # only windows inside one item: none runs into the next item
        counts = np.maximum(np.diff(index) - n + 1, 0)
        owner = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        starts = np.repeat(index[:-1] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()), dtype=np.int64)
        hashes = ngram_hashes(payload, n, base)[starts]
        order, entry_sorted, entry_hash, entry_first = _distinct_ngrams(payload, hashes, starts, n)
        # in hash order the windows of one entry keep their original order (stable sort), so
        # their items ascend and the distinct (entry, item) pairs are where either changes
        owner_sorted = owner[order]
        fresh = np.r_[True, (entry_sorted[1:] != entry_sorted[:-1]) | (owner_sorted[1:] != owner_sorted[:-1])] if len(order) else np.zeros(0, dtype=bool)
        pair_entry, pair_owner = entry_sorted[fresh], owner_sorted[fresh]
        owner_ptr = np.r_[0, np.cumsum(np.bincount(pair_entry, minlength=len(entry_hash)))].astype(np.int64)
        sizes = [int(np.clip(per * len(entry_hash), MIN_BITMAP_BITS, MAX_BITMAP_BITS) - 1).bit_length() for per in BITS_PER_NGRAM]
        first_filter = HashBitmap.build(entry_hash, sizes[0], 64 - sizes[0])  # the top bits
        second_filter = HashBitmap.build(entry_hash, sizes[1], max(0, 64 - sizes[0] - sizes[1]))  # the bits below
        return cls(n, base, payload, entry_hash, entry_first, owner_ptr, pair_owner, (first_filter, second_filter))

    def __len__(self) -> int:
        return len(self.hashes)

    def entry_owners(self) -> tuple[np.ndarray, np.ndarray]:
        """(entry, item) pairs, one per item holding the n-gram."""
        return np.repeat(np.arange(len(self.hashes)), np.diff(self.owner_ptr)), self.owners

    def items_of(self, entries: np.ndarray) -> np.ndarray:
        """Sorted item indices owning any of ``entries``."""
        if len(entries) == 0:
            return np.zeros(0, dtype=np.int64)
        lo, hi = self.owner_ptr[entries], self.owner_ptr[entries + 1]
        picks = np.repeat(lo - np.cumsum(np.r_[0, (hi - lo)[:-1]]), hi - lo) + np.arange(int((hi - lo).sum()))
        return np.unique(self.owners[picks])


@dataclass(frozen=True)
class HashBitmap:
    """One bit per value of hash bits ``[low, low + bits)``, set for every item n-gram's hash."""

    words: np.ndarray  # uint64
    bits: int
    low: int

    @classmethod
    def build(cls, hashes: np.ndarray, bits: int, low: int) -> HashBitmap:
        bitmap = cls(np.zeros(1 << (bits - 6), dtype=np.uint64), bits, low)
        word, bit = bitmap._address(hashes)
        np.bitwise_or.at(bitmap.words, word.view(np.int64), np.left_shift(np.uint64(1), bit))
        return bitmap

    def _address(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = np.right_shift(hashes, np.uint64(self.low))
        word = np.right_shift(value, np.uint64(6)) & np.uint64((1 << (self.bits - 6)) - 1)
        return word, value & np.uint64(63)

    def passing(self, hashes: np.ndarray, buffers: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Positions in ``hashes`` whose bit is set (every item n-gram passes)."""
        count = len(hashes)
        value, word, bit = (b[:count] for b in buffers)
        np.right_shift(hashes, np.uint64(self.low), out=value)
        np.right_shift(value, np.uint64(6), out=word)
        if self.low + self.bits < 64:
            np.bitwise_and(word, np.uint64((1 << (self.bits - 6)) - 1), out=word)
        np.bitwise_and(value, np.uint64(63), out=bit)
        np.take(self.words, word.view(np.int64), out=value)
        np.right_shift(value, bit, out=value)
        np.bitwise_and(value, np.uint64(1), out=value)
        return np.flatnonzero(value)


def _distinct_ngrams(payload: np.ndarray, hashes: np.ndarray, starts: np.ndarray, n: int):
    """Windows in hash order, their entry ids (equal iff equal tokens), and each entry's hash and first window."""
    order = np.argsort(hashes)  # a SIMD sort; ties are put back in window order below
    h = hashes[order]
    group_start = np.r_[True, h[1:] != h[:-1]] if len(h) else np.zeros(0, dtype=bool)
    group = np.cumsum(group_start, dtype=np.int32) - 1
    if len(h) and not group_start.all():  # equal hashes: order them by window, as a stable sort would
        row_bits = int(len(h) - 1).bit_length()
        packed = (group.astype(np.int64) << row_bits) | order
        packed.sort()
        order = packed & ((1 << row_bits) - 1)
    leader = order[np.flatnonzero(group_start)][group]  # first window of each window's hash group
    shared = np.flatnonzero(~group_start)  # windows whose hash an earlier window already has
    same = np.ones(len(h), dtype=bool)
    if len(shared):
        same[shared] = (_windows(payload, starts[order[shared]], n) == _windows(payload, starts[leader[shared]], n)).all(axis=1)
    if same.all():
        entry_sorted = group
    else:
        entry_sorted = _split_collisions(payload, starts[order], group, same, n)
    first_sorted = np.r_[True, entry_sorted[1:] != entry_sorted[:-1]] if len(h) else np.zeros(0, dtype=bool)
    # entries appear in hash order, and within one hash in order of their first window
    firsts = np.flatnonzero(first_sorted)
    entry_first = np.zeros(int(entry_sorted.max()) + 1 if len(h) else 0, dtype=np.int64)
    entry_first[entry_sorted[firsts]] = starts[order[firsts]]
    entry_hash = np.zeros(len(entry_first), dtype=np.uint64)
    entry_hash[entry_sorted[firsts]] = h[firsts]
    return order, entry_sorted, entry_hash, entry_first


def _split_collisions(payload: np.ndarray, starts_sorted: np.ndarray, group: np.ndarray, same: np.ndarray, n: int) -> np.ndarray:
    """Entry ids when some equal hashes hide different tokens (rare: resolved in Python)."""
    entry = np.empty(len(group), dtype=np.int64)
    next_id = 0
    bounds = np.flatnonzero(np.r_[True, group[1:] != group[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if same[lo:hi].all():
            entry[lo:hi] = next_id
            next_id += 1
            continue
        seen: dict[bytes, int] = {}
        for pos in range(lo, hi):
            key = payload[starts_sorted[pos] : starts_sorted[pos] + n].tobytes()
            if key not in seen:
                seen[key] = next_id
                next_id += 1
            entry[pos] = seen[key]
    return entry


def scan_tokens(tokens: np.ndarray, table: NgramTable, ranges: Ranges, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Sorted entries of ``table`` that occur in ``tokens`` at a window start inside ``ranges``."""
    n = table.n
    if len(table) == 0:
        return np.zeros(0, dtype=np.int64)
    hasher = WindowHasher(n, table.base)
    buffers = tuple(np.empty(CHUNK_WINDOWS, dtype=np.uint64) for _ in range(3))
    first_filter, second_filter = table.filters
    found: list[np.ndarray] = []
    for start, stop in ranges:
        for chunk_start in range(start, stop, CHUNK_WINDOWS):
            count = min(CHUNK_WINDOWS, stop - chunk_start)
            piece = np.asarray(tokens[chunk_start : chunk_start + count + n - 1])
            h = hasher.chunk(piece)
            candidates = first_filter.passing(h, buffers)
            candidates = candidates[second_filter.passing(h[candidates], buffers)]
            if len(candidates):
                found.append(_confirm(piece, h[candidates], candidates, table))
            if progress is not None:
                progress(count)
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def _confirm(piece: np.ndarray, cand_hashes: np.ndarray, cand_starts: np.ndarray, table: NgramTable) -> np.ndarray:
    """Entries whose tokens equal a candidate window's tokens (hash match, then token match)."""
    hashes = table.hashes
    lo = np.searchsorted(hashes, cand_hashes, side="left")
    hit = hashes[np.minimum(lo, len(hashes) - 1)] == cand_hashes
    if not hit.any():
        return np.zeros(0, dtype=np.int64)
    lo, cand_hashes, cand_starts = lo[hit], cand_hashes[hit], cand_starts[hit]
    hi = np.searchsorted(hashes, cand_hashes, side="right")
    sizes = hi - lo  # more than 1 only for colliding item n-grams
    entries = np.repeat(lo - np.cumsum(np.r_[0, sizes[:-1]]), sizes) + np.arange(int(sizes.sum()))
    at = np.repeat(cand_starts, sizes)
    first = np.asarray(table.first)[entries]
    equal = (_windows(piece, at, table.n) == _windows(np.asarray(table.payload), first, table.n)).all(axis=1)
    return entries[equal]


def window_count(ranges: Ranges) -> int:
    return sum(stop - start for start, stop in ranges)


def covered_tokens(ranges: Ranges, n: int) -> int:
    """Corpus tokens read by windows starting in ``ranges`` (overlaps counted once)."""
    total, reach = 0, 0
    for start, stop in sorted(ranges):
        if stop <= start:
            continue
        lo, hi = max(start, reach), stop + n - 1
        total += max(0, hi - lo)
        reach = max(reach, hi)
    return total


def split_ranges(ranges: Ranges, parts: int, index: int) -> Ranges:
    """Part ``index`` of ``parts`` equal slices of the window starts that ``ranges`` list in order."""
    total = window_count(ranges)
    lo, hi = total * index // parts, total * (index + 1) // parts
    out: Ranges = []
    seen = 0
    for start, stop in ranges:
        size = stop - start
        a, b = max(lo - seen, 0), min(hi - seen, size)
        if a < b:
            out.append((start + a, start + b))
        seen += size
    return out


def _tasks(ranges: Ranges, size: int) -> Iterator[Ranges]:
    for start, stop in ranges:
        for task_start in range(start, stop, size):
            yield [(task_start, min(task_start + size, stop))]


@dataclass(frozen=True)
class TokenFile:
    """A raw token memmap on disk (a CORPUS dir's tokens.bin) that worker processes reopen."""

    path: Path
    dtype: str
    n_tokens: int

    def open(self) -> np.ndarray:
        if self.n_tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n_tokens,))


_worker_state: dict = {}


def _worker_init(token_file: TokenFile, table: NgramTable) -> None:
    _worker_state["tokens"] = token_file.open()  # each worker maps the corpus itself
    _worker_state["table"] = table


def _worker_scan(ranges: Ranges) -> tuple[np.ndarray, int]:
    return scan_tokens(_worker_state["tokens"], _worker_state["table"], ranges), window_count(ranges)


def scan_token_file(
    token_file: TokenFile,
    table: NgramTable,
    ranges: Ranges,
    *,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``scan_tokens`` over a token file, split over ``workers`` processes (same result for any count)."""
    if workers <= 1 or len(table) == 0:
        return scan_tokens(token_file.open(), table, ranges, progress)
    import multiprocessing

    task_size = max(CHUNK_WINDOWS, min(TASK_WINDOWS, -(-window_count(ranges) // (4 * workers))))
    # fork shares the n-gram table with the workers copy-on-write; elsewhere spawn pickles it once per worker
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    found: list[np.ndarray] = []
    with multiprocessing.get_context(method).Pool(workers, initializer=_worker_init, initargs=(token_file, table)) as pool:
        for entries, windows in pool.imap_unordered(_worker_scan, _tasks(ranges, task_size)):
            found.append(entries)
            if progress is not None:
                progress(windows)
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def full_ranges(n_tokens: int, n: int) -> Ranges:
    """Every window start of a corpus of ``n_tokens`` tokens."""
    return [(0, n_tokens - n + 1)] if n_tokens >= n else []


def sampled_ranges(n_tokens: int, n: int, max_tokens: int | None, chunk: int) -> Ranges:
    """Evenly spaced chunks of ``chunk`` window starts covering about ``max_tokens`` tokens (all with None)."""
    if n_tokens < n:
        return []
    last = n_tokens - n + 1
    if max_tokens is None or max_tokens >= n_tokens:
        return full_ranges(n_tokens, n)
    chunk = min(chunk, n_tokens)
    starts = np.arange(0, last, chunk)
    keep = max(1, max_tokens // chunk)
    starts = starts[np.unique(np.linspace(0, len(starts) - 1, keep).round().astype(np.int64))]
    return [(int(s), int(min(s + chunk, last))) for s in starts]


def check_ranges_tile(parts: Sequence[Ranges], whole: Ranges) -> bool:
    """True when ``parts`` concatenated are exactly ``whole``'s window starts, in order, once each."""
    flat = [r for part in parts for r in part]
    merged: Ranges = []
    for start, stop in flat:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    expected: Ranges = []
    for start, stop in whole:
        if expected and expected[-1][1] == start:
            expected[-1] = (expected[-1][0], stop)
        else:
            expected.append((start, stop))
    return merged == expected
