import numpy as np
import pytest

from designkit.planning import ngram_scan
from designkit.planning.ngram_scan import (
    NgramTable,
    TokenFile,
    check_ranges_tile,
    covered_tokens,
    full_ranges,
    ngram_hashes,
    scan_token_file,
    scan_tokens,
    split_ranges,
)


def _reference_hashes(tokens, n, base=ngram_scan.BASE):
    """The textbook form: Horner's rule over each window, one multiply-add per token."""
    values = np.asarray(tokens).astype(np.uint64)
    count = len(values) - n + 1
    out = np.zeros(max(count, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            out = out * np.uint64(base) + values[k : k + max(count, 0)]
    return out


def _brute_force_hits(corpus, payload, index, n):
    """Items with an n-gram in the corpus, by Python sets of token tuples."""
    corpus_grams = {tuple(corpus[i : i + n]) for i in range(len(corpus) - n + 1)}
    hits = []
    for item in range(len(index) - 1):
        tokens = payload[index[item] : index[item + 1]].tolist()
        if any(tuple(tokens[i : i + n]) in corpus_grams for i in range(len(tokens) - n + 1)):
            hits.append(item)
    return hits


def _planted_case(seed, n, chunk_windows):
    """Random corpus and items; some items carry corpus passages, including ones that straddle chunk ends."""
    rng = np.random.default_rng(seed)
    corpus = rng.integers(0, 300, size=6 * chunk_windows + 11).astype(np.uint16)
    pieces = []
    for item in range(40):
        tokens = rng.integers(0, 300, size=int(rng.integers(n - 2, 3 * n)))
        if item % 3 == 0:  # a verbatim corpus passage, often across a chunk boundary
            boundary = chunk_windows * int(rng.integers(1, 6))
            at = boundary - int(rng.integers(1, n)) if item % 2 else int(rng.integers(0, len(corpus) - n))
            tokens = np.r_[tokens[:3], corpus[at : at + n], tokens[3:]]
        pieces.append(tokens.astype(np.uint16))
    pieces.append(corpus[-n:].copy())  # the very last window
    pieces.append(corpus[:n].copy())  # the very first window
    index = np.r_[0, np.cumsum([len(p) for p in pieces])]
    return corpus, np.concatenate(pieces), index


def test_window_hashes_equal_horners_rule_across_chunks(monkeypatch):
    tokens = np.random.default_rng(1).integers(0, 65536, size=1000).astype(np.uint16)
    monkeypatch.setattr(ngram_scan, "CHUNK_WINDOWS", 64)
    for n in (1, 4, 13):
        assert np.array_equal(ngram_hashes(tokens, n), _reference_hashes(tokens, n))
        assert np.array_equal(ngram_scan.WindowHasher(n, max_windows=37).all(tokens), _reference_hashes(tokens, n))
    assert len(ngram_hashes(tokens[:3], 4)) == 0


def test_equal_windows_hash_equal():
    tokens = np.array([5, 6, 7, 8, 5, 6, 7, 8, 9], dtype=np.uint16)
    h = ngram_hashes(tokens, 4)
    assert len(h) == 6 and h[0] == h[4] and len(set(h.tolist())) == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scan_finds_exactly_the_brute_force_hits(monkeypatch, seed):
    n, chunk = 13, 256
    monkeypatch.setattr(ngram_scan, "CHUNK_WINDOWS", chunk)
    corpus, payload, index = _planted_case(seed, n, chunk)
    table = NgramTable.build(payload, index, n)
    found = table.items_of(scan_tokens(corpus, table, full_ranges(len(corpus), n)))
    expected = _brute_force_hits(corpus, payload, index, n)
    assert len(expected) >= 14
    assert found.tolist() == expected


def test_hash_collisions_never_report_a_hit(monkeypatch):
    """With base 1 the hash is the token sum, so every anagram of a window collides."""
    n, chunk = 6, 128
    monkeypatch.setattr(ngram_scan, "CHUNK_WINDOWS", chunk)
    corpus, payload, index = _planted_case(5, n, chunk)
    anagrams = [corpus[at : at + n][::-1].copy() for at in (10, 300, 700)]  # same sum, other order
    anagrams = [a for a in anagrams if not np.array_equal(a, a[::-1])]
    payload = np.concatenate([payload, *anagrams])
    index = np.r_[index, index[-1] + n * np.arange(1, len(anagrams) + 1)]
    table = NgramTable.build(payload, index, n, base=1)
    assert len(np.unique(table.hashes)) < len(table)  # distinct n-grams do share hashes
    found = table.items_of(scan_tokens(corpus, table, full_ranges(len(corpus), n)))
    assert found.tolist() == _brute_force_hits(corpus, payload, index, n)


def test_item_ngrams_never_span_two_items():
    payload = np.array([1, 2, 3, 4, 5, 6], dtype=np.uint16)
    table = NgramTable.build(payload, np.array([0, 3, 6]), 3)
    entries, owners = table.entry_owners()
    assert sorted(owners.tolist()) == [0, 1]
    assert set(table.hashes.tolist()) == {ngram_hashes(payload[:3], 3)[0], ngram_hashes(payload[3:], 3)[0]}


def test_shards_tile_every_window_once():
    whole = [(0, 1000), (5000, 5003), (9000, 9500)]
    parts = [split_ranges(whole, 7, i) for i in range(7)]
    assert check_ranges_tile(parts, whole)
    assert sum(covered_tokens(p, 13) for p in parts) >= covered_tokens(whole, 13)
    assert not check_ranges_tile(parts[:-1], whole)
    assert covered_tokens([(0, 100)], 13) == 112 and covered_tokens([(0, 50), (50, 100)], 13) == 112


def test_parallel_scan_equals_one_process(tmp_path, monkeypatch):
    n = 13
    monkeypatch.setattr(ngram_scan, "TASK_WINDOWS", 1 << 12)  # several tasks per worker
    corpus, payload, index = _planted_case(7, n, 1 << 11)
    path = tmp_path / "tokens.bin"
    corpus.tofile(path)
    table = NgramTable.build(payload, index, n)
    token_file = TokenFile(path, "uint16", len(corpus))
    ranges = full_ranges(len(corpus), n)
    seen = []
    parallel = scan_token_file(token_file, table, ranges, workers=2, progress=seen.append)
    assert np.array_equal(parallel, scan_tokens(corpus, table, ranges))
    assert sum(seen) == len(corpus) - n + 1
    assert table.items_of(parallel).tolist() == _brute_force_hits(corpus, payload, index, n)


def test_shard_boundaries_lose_no_straddling_ngram():
    """Each item is one n-gram lying across a shard boundary: only the n - 1 token overlap finds it."""
    n = 13
    corpus = np.random.default_rng(3).integers(0, 1000, size=5000).astype(np.uint16)
    whole = full_ranges(len(corpus), n)
    parts = [split_ranges(whole, 5, i) for i in range(5)]
    boundaries = [part[0][0] for part in parts[1:]]
    payload = np.concatenate([corpus[b - 6 : b + 7] for b in boundaries])
    index = n * np.arange(len(boundaries) + 1)
    table = NgramTable.build(payload, index, n)
    found = np.unique(np.concatenate([scan_tokens(corpus, table, part) for part in parts]))
    assert table.items_of(found).tolist() == list(range(len(boundaries)))
    assert covered_tokens([r for part in parts for r in part], n) == len(corpus)
