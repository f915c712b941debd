"""Leakage: token n-gram overlap between experiments' items and against the base corpus.

The default 13-gram follows lm-eval-harness decontamination, but counts tokens rather than
words. A control item whose n-gram occurs in the training data is no longer a clean
control, and a treated item found in the corpus gets more exposure than its dose says,
so both are reported, per experiment and arm.

n-grams are compared by a 64-bit polynomial rolling hash computed with numpy's wrapping
uint64 arithmetic. The corpus is scanned in chunks against the (small) set of item hashes,
so memory stays flat however large the corpus is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_BASE = np.uint64(0x100000001B3)  # FNV-1 64-bit prime: odd, so the hash is a bijection per position
_CHUNK_TOKENS = 1 << 24
MAX_REPORTED_PAIRS = 50


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """Hash of every length-``n`` window of ``tokens`` (empty if shorter than ``n``)."""
    tokens = np.asarray(tokens)
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    values = tokens.astype(np.uint64) + np.uint64(1)  # +1 so token 0 still contributes
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * _BASE + values[k : k + count]
    return hashes


def item_ngrams(payload_tokens: np.ndarray, payload_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All n-gram hashes of all items, and the item each belongs to (deduplicated per item)."""
    flat = ngram_hashes(payload_tokens, n)
    starts = np.arange(len(flat))
    owner = np.searchsorted(payload_index, starts, side="right") - 1
    inside = starts + n <= payload_index[owner + 1]  # windows that do not run into the next item
    hashes, owner = flat[inside], owner[inside]
    order = np.lexsort((hashes, owner))
    hashes, owner = hashes[order], owner[order]
    fresh = np.r_[True, (hashes[1:] != hashes[:-1]) | (owner[1:] != owner[:-1])] if len(hashes) else np.zeros(0, bool)
    return hashes[fresh], owner[fresh].astype(np.int64)


def cross_experiment_pairs(hashes: np.ndarray, owners: np.ndarray, experiment_of_item: np.ndarray) -> pd.DataFrame:
    """Pairs of items from different experiments that share at least one n-gram."""
    order = np.lexsort((owners, hashes))
    h, o = hashes[order], owners[order]
    exp = experiment_of_item[o]
    starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, np.int64)
    if len(starts) == 0:
        return pd.DataFrame({"item_a": [], "item_b": []}, dtype=np.int64)
    mixed = np.minimum.reduceat(exp, starts) != np.maximum.reduceat(exp, starts)
    ends = np.r_[starts[1:], len(h)]
    pairs = set()
    for start, end in zip(starts[mixed], ends[mixed]):  # only n-grams shared across experiments
        group, exps = o[start:end], exp[start:end]
        for a_pos in range(len(group)):
            for b_pos in range(a_pos + 1, len(group)):
                if exps[a_pos] != exps[b_pos]:
                    a, b = int(group[a_pos]), int(group[b_pos])
                    pairs.add((min(a, b), max(a, b)))
    return pd.DataFrame(sorted(pairs), columns=["item_a", "item_b"], dtype=np.int64)


def corpus_hits(
    corpus_tokens: np.ndarray,
    hashes: np.ndarray,
    owners: np.ndarray,
    n: int,
    *,
    max_tokens: int | None = None,
    progress=None,
) -> tuple[np.ndarray, int]:
    """Items with an n-gram in ``corpus_tokens``, and how many corpus tokens were scanned.

    With ``max_tokens`` below the corpus size, evenly spaced chunks are scanned instead of
    everything, so a 200B-token corpus can still be sampled in minutes.
    """
    targets = np.sort(hashes)  # duplicates are harmless for the membership test below
    total = len(corpus_tokens)
    if total < n or len(targets) == 0:
        return np.zeros(0, dtype=np.int64), 0
    chunk = min(_CHUNK_TOKENS, total)
    starts = np.arange(0, total - n + 1, chunk)
    if max_tokens is not None and max_tokens < total:
        keep = max(1, max_tokens // chunk)
        starts = starts[np.linspace(0, len(starts) - 1, keep).round().astype(np.int64)]
    found = []
    scanned = 0
    for start in starts:
        window = np.asarray(corpus_tokens[start : min(start + chunk + n - 1, total)])
        chunk_hashes = ngram_hashes(window, n)
        found.append(chunk_hashes[_member(chunk_hashes, targets)])
        scanned += len(window)
        if progress is not None:
            progress(len(window))
    matched = np.sort(np.concatenate(found)) if found else np.zeros(0, np.uint64)
    return np.unique(owners[_member(hashes, matched)]), scanned


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` against an already sorted array: one binary search per value, no re-sorting."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def leakage_report(
    items: pd.DataFrame,
    payload_tokens: np.ndarray,
    payload_index: np.ndarray,
    corpus_tokens: np.ndarray | None,
    n: int,
    max_corpus_tokens: int | None = None,
    progress=None,
) -> dict:
    """Counts per experiment and arm, the offending pairs and items (capped), as plain JSON."""
    hashes, owners = item_ngrams(payload_tokens, payload_index, n)
    experiment_codes = pd.factorize(items["experiment"])[0]
    pairs = cross_experiment_pairs(hashes, owners, experiment_codes)
    lengths = np.diff(payload_index)
    if corpus_tokens is not None:
        in_corpus, scanned = corpus_hits(corpus_tokens, hashes, owners, n, max_tokens=max_corpus_tokens, progress=progress)
    else:
        in_corpus, scanned = np.zeros(0, dtype=np.int64), 0
    flags = pd.DataFrame(
        {
            "experiment": items["experiment"].to_numpy(),
            "arm": items["arm"].to_numpy(),
            "too_short": lengths < n,
            "in_corpus": np.isin(np.arange(len(items)), in_corpus),
            "cross_experiment": np.isin(np.arange(len(items)), pairs.to_numpy().ravel()),
        }
    )
    per_arm = (
        flags.groupby(["experiment", "arm"], sort=False)
        .agg(items=("arm", "size"), too_short=("too_short", "sum"), in_corpus=("in_corpus", "sum"), cross_experiment=("cross_experiment", "sum"))
        .reset_index()
    )
    item_ids = items["item_id"].to_numpy()
    return {
        "ngram": n,
        "corpus_tokens_scanned": int(scanned),
        "corpus_tokens_total": int(len(corpus_tokens)) if corpus_tokens is not None else 0,
        "items_in_corpus": int(len(in_corpus)),
        "cross_experiment_pairs": int(len(pairs)),
        "items_too_short": int(flags["too_short"].sum()),
        "per_arm": [{k: (int(v) if isinstance(v, (np.integer, bool, np.bool_)) else v) for k, v in row.items()} for row in per_arm.to_dict("records")],
        "examples_in_corpus": [str(item_ids[i]) for i in in_corpus[:MAX_REPORTED_PAIRS]],
        "examples_cross_experiment": [[str(item_ids[a]), str(item_ids[b])] for a, b in pairs.to_numpy()[:MAX_REPORTED_PAIRS]],
    }
