"""Span finder throughput: find 1,000 spans of 50 tokens in a synthetic token memmap.

Writes a uint16 memmap of ``--tokens`` random tokens (default 200M) with every span planted
a few times (some straddling window boundaries), runs ``find_span_hits`` over it (occurrences,
touched windows, every sequence of a 4-epoch run that reads them) and prints the rate in
tokens/s with the projected time for a 1B-token corpus against the target (a few minutes:
10 min), and checks that every planted occurrence was found.
``--corpus DIR`` instead scans a prepared CORPUS dir (e.g. the demo's, under
``~/.cache/designkit/corpora/``) for spans drawn from it and prints its rate.
Run: python benchmarks/span_finder.py [--tokens N | --corpus DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from designkit.planning.permutation import BaseOrder
from designkit.planning.span_finder import find_span_hits

TARGET_SECONDS_PER_BILLION = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200_000_000)
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--corpus", type=Path, help="a prepared CORPUS dir to scan instead of a synthetic memmap")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    window_tokens = args.seq_len + 1
    if args.corpus is not None:
        scan_corpus(args.corpus, args.spans, args.length, window_tokens, rng)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.bin"
        tokens = np.memmap(path, dtype=np.uint16, mode="w+", shape=(args.tokens,))
        for start in range(0, args.tokens, 1 << 24):
            stop = min(start + (1 << 24), args.tokens)
            tokens[start:stop] = rng.integers(0, 50_000, size=stop - start, dtype=np.uint16)
        spans = rng.integers(0, 50_000, size=(args.spans, args.length), dtype=np.uint16)
        planted = rng.integers(0, args.tokens - args.length, size=(args.spans, 3))
        planted[:, 2] = (planted[:, 2] // window_tokens) * window_tokens + window_tokens - args.length // 2  # straddling
        planted = np.minimum(planted, args.tokens - args.length)
        for i in range(args.spans):
            for s in planted[i]:
                tokens[s : s + args.length] = spans[i]
        tokens.flush()
        del tokens
        corpus = np.memmap(path, dtype=np.uint16, mode="r", shape=(args.tokens,))
        n_windows = args.tokens // window_tokens
        order = BaseOrder(n_windows, seed=1)
        began = time.perf_counter()
        hits = find_span_hits(corpus, spans, window_tokens=window_tokens, order=order, n_sequences=4 * n_windows)
        seconds = time.perf_counter() - began
        # a later plant may overwrite an earlier one: count the occurrences that survived
        intact = [(i, int(s)) for i in range(args.spans) for s in planted[i] if np.array_equal(corpus[s : s + args.length], spans[i])]
    found = set(zip(hits.occurrences.span.tolist(), hits.occurrences.start.tolist()))
    in_region = [(i, s) for i, s in intact if s + args.length <= n_windows * window_tokens]
    missing = sum((i, s) not in found for i, s in in_region)
    rate = args.tokens / seconds
    per_billion = 1e9 / rate
    print(f"span finder: {args.tokens:,} tokens, {args.spans} spans of {args.length} tokens in {seconds:.2f} s")
    print(f"  rate {rate / 1e6:.1f} M tokens/s; a 1B-token corpus ≈ {per_billion:.0f} s (target {TARGET_SECONDS_PER_BILLION:.0f} s, ratio {per_billion / TARGET_SECONDS_PER_BILLION:.2f})")
    print(f"  {len(found):,} occurrences, {sum(len(s) for s in hits.sequences):,} trained sequences; planted occurrences missed: {missing}")


def scan_corpus(path: Path, n_spans: int, length: int, window_tokens: int, rng: np.random.Generator) -> None:
    from designkit.data.corpus import TokenCorpus

    corpus = TokenCorpus.open(path)
    tokens = corpus.tokens
    starts = rng.integers(0, corpus.n_tokens - length, size=n_spans)
    spans = np.asarray(tokens[starts[:, None] + np.arange(length)])
    n_windows = corpus.n_tokens // window_tokens
    order = BaseOrder(n_windows, seed=1)
    began = time.perf_counter()
    hits = find_span_hits(tokens, spans, window_tokens=window_tokens, order=order, n_sequences=4 * n_windows)
    seconds = time.perf_counter() - began
    print(f"span finder on {path}: {corpus.n_tokens:,} tokens, {n_spans} spans of {length} tokens in {seconds:.2f} s "
          f"({corpus.n_tokens / seconds / 1e6:.1f} M tokens/s); {len(hits.occurrences):,} occurrences "
          f"(each drawn span at least once: {bool((np.bincount(hits.occurrences.span, minlength=n_spans) >= 1).all())})")


if __name__ == "__main__":
    main()
