"""Corpus leakage scan: tokens/s per core of the exact scan vs the algorithm it replaced.

200k items of 38 tokens (5.2M distinct item 13-grams) against a synthetic token memmap
(uint16, GPT-2-sized vocabulary) into which 100 item passages are planted. Times the scan of
``designkit.planning.ngram_scan`` over the whole memmap and the previous algorithm (Horner
hashes of every window, then a binary search of every hash in the sorted item hashes; kept
below as the reference) over its first ``--old-tokens``, checks both find the same items on
that prefix, and prints tokens per CPU-second (per core), the wall-clock rate, the load
average (the CPUs may be shared) and the speed-up; target ≥ 30M tokens/s per core. With
``--workers N`` it also times the parallel scan. About 1–2 minutes on one free core.
Run: python benchmarks/leakage_scan.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from designkit.planning.ngram_scan import NgramTable, TokenFile, full_ranges, scan_token_file, scan_tokens

TARGET_PER_CORE = 30e6
VOCAB = 50257
_OLD_BASE = np.uint64(0x100000001B3)
_OLD_CHUNK = 1 << 24


def old_ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """The replaced hash: Horner's rule, one multiply-add pass per token of the n-gram."""
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    values = tokens.astype(np.uint64) + np.uint64(1)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * _OLD_BASE + values[k : k + count]
    return hashes


def old_corpus_hits(corpus: np.ndarray, payload: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """The replaced scan: every corpus window's hash binary-searched in the sorted item hashes."""
    flat = old_ngram_hashes(payload, n)
    starts = np.arange(len(flat))
    owner = np.searchsorted(index, starts, side="right") - 1
    inside = starts + n <= index[owner + 1]
    hashes, owner = flat[inside], owner[inside]
    targets = np.sort(hashes)
    found = []
    for start in range(0, len(corpus) - n + 1, _OLD_CHUNK):
        window = np.asarray(corpus[start : min(start + _OLD_CHUNK + n - 1, len(corpus))])
        chunk_hashes = old_ngram_hashes(window, n)
        at = np.minimum(np.searchsorted(targets, chunk_hashes), len(targets) - 1)
        found.append(chunk_hashes[targets[at] == chunk_hashes])
    matched = np.sort(np.concatenate(found))
    at = np.minimum(np.searchsorted(matched, hashes), max(len(matched) - 1, 0))
    return np.unique(owner[matched[at] == hashes]) if len(matched) else np.zeros(0, dtype=np.int64)


def synthetic(folder: Path, n_tokens: int, items: int, item_tokens: int, rng: np.random.Generator):
    payload = rng.integers(0, VOCAB, items * item_tokens, dtype=np.uint16)
    index = np.arange(items + 1, dtype=np.int64) * item_tokens
    path = folder / "tokens.bin"
    tokens = np.memmap(path, dtype=np.uint16, mode="w+", shape=(n_tokens,))
    for start in range(0, n_tokens, 1 << 26):
        stop = min(start + (1 << 26), n_tokens)
        tokens[start:stop] = rng.integers(0, VOCAB, stop - start, dtype=np.uint16)
    planted = rng.choice(items, size=100, replace=False)
    # half near the start (inside the old algorithm's prefix), half anywhere
    where = np.r_[rng.integers(0, 4_000_000, 50), rng.integers(0, n_tokens - item_tokens, 50)]
    for item, at in zip(planted, where):
        tokens[at : at + item_tokens] = payload[index[item] : index[item + 1]]
    tokens.flush()
    return TokenFile(path, "uint16", n_tokens), payload, index, planted


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=float, default=5e8, help="synthetic corpus size (default 5e8)")
    parser.add_argument("--old-tokens", type=float, default=2e7, help="prefix the old algorithm scans (default 2e7)")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--item-tokens", type=int, default=38)
    parser.add_argument("--workers", type=int, default=0, help="also time a scan over this many processes")
    args = parser.parse_args()
    n = 13
    with tempfile.TemporaryDirectory() as tmp:
        token_file, payload, index, planted = synthetic(Path(tmp), int(args.tokens), args.items, args.item_tokens, np.random.default_rng(0))
        table, build_wall, _ = timed(lambda: NgramTable.build(payload, index, n))
        corpus = token_file.open()
        print(f"{len(table):,} distinct item {n}-grams of {args.items:,} items (table built in {build_wall:.1f} s); corpus {len(corpus):,} tokens")

        old_len = int(min(args.old_tokens, len(corpus)))
        old_items, old_wall, old_cpu = timed(lambda: old_corpus_hits(corpus[:old_len], payload, index, n))
        new_prefix = table.items_of(scan_tokens(corpus[:old_len], table, full_ranges(old_len, n)))
        same = np.array_equal(old_items, new_prefix)

        entries, new_wall, new_cpu = timed(lambda: scan_tokens(corpus, table, full_ranges(len(corpus), n)))
        found = table.items_of(entries)
        load = os.getloadavg()[0]
        old_rate, new_rate = old_len / old_cpu, len(corpus) / new_cpu
        print(f"old (Horner + binary search of every window): {old_rate / 1e6:6.1f}M tokens/s per core ({old_len / old_wall / 1e6:.1f}M/s wall) over {old_len:,} tokens")
        print(f"new (cumsum hash + two bitmaps + exact check): {new_rate / 1e6:6.1f}M tokens/s per core ({len(corpus) / new_wall / 1e6:.1f}M/s wall) over {len(corpus):,} tokens")
        print(f"speed-up {new_rate / old_rate:.0f}×; {new_rate / TARGET_PER_CORE:.2f} of the {TARGET_PER_CORE / 1e6:.0f}M tokens/s per core target")
        print(f"same items as the old algorithm on the prefix: {same} ({len(old_items)} found); planted items found: {np.isin(planted, found).sum()}/{len(planted)}")
        if args.workers > 1:
            parallel, par_wall, _ = timed(lambda: scan_token_file(token_file, table, full_ranges(len(corpus), n), workers=args.workers))
            print(f"{args.workers} workers: {len(corpus) / par_wall / 1e6:.1f}M tokens/s wall ({new_wall / par_wall:.2f}× one process), same entries: {np.array_equal(parallel, entries)}")
        print(f"load average {load:.1f} on {os.cpu_count()} CPUs (CPU time is counted per process; wall rates suffer when the CPUs are shared)")


if __name__ == "__main__":
    main()
