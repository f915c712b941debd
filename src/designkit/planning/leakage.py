"""Leakage: token n-gram overlap between experiments' items and against the base corpus.

The default 13-gram follows lm-eval-harness decontamination, but counts tokens rather than
words. A control item whose n-gram occurs in the training data is no longer a clean
control, and a treated item found in the corpus gets more exposure than its dose says,
so both are reported, per experiment and arm.

n-grams are matched exactly (hashes find candidates, tokens confirm them); the corpus scan
itself lives in ``ngram_scan`` and streams the memmap chunk by chunk, so memory stays flat
however large the corpus is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from designkit.planning.ngram_scan import NgramTable, covered_tokens, ngram_hashes, sampled_ranges, scan_tokens

__all__ = ["NgramTable", "ngram_hashes", "cross_experiment_pairs", "corpus_hits", "leakage_report", "assemble_report"]

SAMPLE_CHUNK_TOKENS = 1 << 24  # granularity of the evenly spaced chunks of a sampled scan
MAX_REPORTED_PAIRS = 50


def cross_experiment_pairs(entries: np.ndarray, owners: np.ndarray, experiment_of_item: np.ndarray, *, presorted: bool = False) -> pd.DataFrame:
    """Pairs of items from different experiments that share at least one n-gram (``entries``: n-gram ids;
    ``presorted``: the pairs are already sorted by entry)."""
    if len(experiment_of_item) == 0 or experiment_of_item.min() == experiment_of_item.max():  # one experiment: no pairs
        return pd.DataFrame({"item_a": [], "item_b": []}, dtype=np.int64)
    if presorted:
        h, o = entries, owners
    else:
        order = np.lexsort((owners, entries))
        h, o = entries[order], owners[order]
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


def payload_rows(items: pd.DataFrame, payloads: pd.DataFrame) -> pd.DataFrame:
    """One row per payload carrying its item's columns (``item_index`` included): the rows the
    n-gram table's owners index, so hits map back to items."""
    return items.iloc[payloads["item_index"].to_numpy()].reset_index(drop=True)


def select_items(items: pd.DataFrame, payload_tokens: np.ndarray, payload_index: np.ndarray, keep: np.ndarray):
    """Items, tokens and offsets of the items where ``keep`` is true (all inputs when every one is)."""
    if keep.all():
        return items, payload_tokens, payload_index
    rows = np.flatnonzero(keep)
    lengths = np.diff(payload_index)[rows]
    index = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    tokens = np.concatenate([payload_tokens[payload_index[r] : payload_index[r + 1]] for r in rows]) if len(rows) else payload_tokens[:0]
    return items.iloc[rows].reset_index(drop=True), tokens, index


def corpus_hits(
    corpus_tokens: np.ndarray,
    table: NgramTable,
    *,
    max_tokens: int | None = None,
    progress=None,
) -> tuple[np.ndarray, int]:
    """Items with an n-gram in ``corpus_tokens``, and how many corpus tokens were scanned.

    With ``max_tokens`` below the corpus size, evenly spaced chunks are scanned instead of
    everything.
    """
    ranges = sampled_ranges(len(corpus_tokens), table.n, max_tokens, SAMPLE_CHUNK_TOKENS)
    if len(table) == 0 or not ranges:
        return np.zeros(0, dtype=np.int64), 0
    entries = scan_tokens(corpus_tokens, table, ranges, progress)
    return table.items_of(entries), covered_tokens(ranges, table.n)


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
    table = NgramTable.build(payload_tokens, payload_index, n)
    if corpus_tokens is not None:
        in_corpus, scanned = corpus_hits(corpus_tokens, table, max_tokens=max_corpus_tokens, progress=progress)
    else:
        in_corpus, scanned = np.zeros(0, dtype=np.int64), 0
    total = len(corpus_tokens) if corpus_tokens is not None else 0
    return assemble_report(items, table, payload_index, in_corpus, scanned, total)


def assemble_report(items: pd.DataFrame, table: NgramTable, payload_index: np.ndarray, in_corpus: np.ndarray, scanned: int, total: int) -> dict:
    """The leakage report from the items, their n-grams and the items found in the corpus."""
    n = table.n
    experiment_codes = pd.factorize(items["experiment"])[0]
    pairs = cross_experiment_pairs(*table.entry_owners(), experiment_codes, presorted=True)
    lengths = np.diff(payload_index)
    in_corpus = np.unique(np.asarray(in_corpus, dtype=np.int64))
    flags = pd.DataFrame(
        {
            "experiment": items["experiment"].to_numpy(),
            "arm": items["arm"].to_numpy(),
            "too_short": lengths < n,
            "in_corpus": np.isin(np.arange(len(items)), in_corpus),
            "cross_experiment": np.isin(np.arange(len(items)), pairs.to_numpy().ravel()),
        }
    )
    item_ids = items["item_id"].to_numpy()
    if "item_index" in items.columns and items["item_index"].duplicated().any():
        # rows are payloads: count items, each flagged if any of its payloads is (too short if all are)
        distinct, first = np.unique(items["item_index"].to_numpy(np.int64), return_index=True)
        position = np.searchsorted(distinct, items["item_index"].to_numpy(np.int64))
        flags = flags.groupby(position, sort=True).agg(
            experiment=("experiment", "first"), arm=("arm", "first"), too_short=("too_short", "all"),
            in_corpus=("in_corpus", "any"), cross_experiment=("cross_experiment", "any"),
        ).reset_index(drop=True)
        in_corpus = np.unique(position[in_corpus])
        if len(pairs):
            a, b = position[pairs["item_a"].to_numpy()], position[pairs["item_b"].to_numpy()]
            pairs = pd.DataFrame({"item_a": np.minimum(a, b), "item_b": np.maximum(a, b)}).drop_duplicates().sort_values(["item_a", "item_b"])
        item_ids = item_ids[first]
    per_arm = (
        flags.groupby(["experiment", "arm"], sort=False)
        .agg(items=("arm", "size"), too_short=("too_short", "sum"), in_corpus=("in_corpus", "sum"), cross_experiment=("cross_experiment", "sum"))
        .reset_index()
    )
    return {
        "ngram": n,
        "corpus_tokens_scanned": int(scanned),
        "corpus_tokens_total": int(total),
        "items_in_corpus": int(len(in_corpus)),
        "cross_experiment_pairs": int(len(pairs)),
        "items_too_short": int(flags["too_short"].sum()),
        "per_arm": [{k: (int(v) if isinstance(v, (np.integer, bool, np.bool_)) else v) for k, v in row.items()} for row in per_arm.to_dict("records")],
        "examples_in_corpus": [str(item_ids[i]) for i in in_corpus[:MAX_REPORTED_PAIRS]],
        "examples_cross_experiment": [[str(item_ids[a]), str(item_ids[b])] for a, b in pairs.to_numpy()[:MAX_REPORTED_PAIRS]],
    }

