"""The one provenance check (train and analyze): edits, steps and trained-token checksums against the plan."""

from __future__ import annotations

import numpy as np
import pandas as pd

from designkit.provenance import check_applied, insertion_checksums, noise_checksums, planned_checksums, span_checksums, token_checksum

EOS = 0


def test_checksums_tell_shifted_reordered_and_truncated_spans_apart():
    span = [EOS, 5, 6, 7, EOS]
    others = [[EOS, 6, 5, 7, EOS], [5, 6, 7, EOS, 3], [EOS, 5, 6, 7], [EOS, 5, 6, 8, EOS]]
    assert len({token_checksum(span), *map(token_checksum, others)}) == 5
    flat = np.array([9, *span, 9, *span])
    np.testing.assert_array_equal(span_checksums(flat, np.array([1, 7]), np.array([5, 5])), [token_checksum(span)] * 2)


def test_insertion_checksum_is_that_of_eos_payload_eos():
    payload_tokens, payload_index = np.array([5, 6, 7, 8, 9], np.uint16), np.array([0, 2, 2, 5])
    got = insertion_checksums(payload_tokens, payload_index, EOS)
    assert got.tolist() == [token_checksum([EOS, 5, 6, EOS]), token_checksum([EOS, EOS]), token_checksum([EOS, 7, 8, 9, EOS])]


def _plan():
    placements = pd.DataFrame({"global_seq": [0, 9, 17, 20], "offset": [3, 0, 5, 0], "n_tokens": [4, 5, 4, 65],
                               "item_index": [1, 2, 1, 0], "payload_index": [1, 2, 1, -1], "edit": ["insert", "insert", "insert", "noise"],
                               "reserve_seq": -1, "noise_seed": [-1, -1, -1, 4], "noise_std": [0, 0, 0, 0.5]})
    insertion = np.array([11, 22, 33], dtype=np.int64)
    return placements, planned_checksums(placements, insertion=insertion, reserve_window=None)


def test_check_applied_counts_missing_extra_misplaced_and_wrong_token_edits():
    planned, checksums = _plan()
    assert checksums[:3].tolist() == [22, 33, 22]
    assert checksums[3] == noise_checksums([4], [0.5], [0], [65])[0]
    applied = planned.assign(step=[0, 1, 2, 2], checksum=checksums)
    assert check_applied(planned, applied, 8, checksums).agrees
    moved = applied.assign(offset=[3, 0, 6, 0])
    check = check_applied(planned, moved, 8, checksums)
    assert (check.missing, check.extra, check.agrees) == (1, 1, False)
    late = applied.assign(step=[0, 1, 3, 2])
    assert check_applied(planned, late, 8, checksums).wrong_step == 1
    doubled = pd.concat([applied, applied.iloc[:1]])
    check = check_applied(planned, doubled, 8, checksums)
    assert (check.missing, check.extra) == (0, 1)  # a multiset: an edit applied twice is one too many
    other_tokens = applied.assign(checksum=checksums + np.array([0, 0, 1, 0]))
    check = check_applied(planned, other_tokens, 8, checksums)
    assert (check.missing, check.extra, check.wrong_step, check.wrong_tokens, check.agrees) == (0, 0, 0, 1, False)
    assert "global_seq=17" in check.describe() and "1 trained other tokens than the plan's" in check.describe()


def test_an_insertion_is_checked_against_its_own_payload_not_its_items_first():
    """An item with several payloads (paraphrases): each placement's checksum is its payload's,
    so training another paraphrase of the same item is caught."""
    placements = pd.DataFrame({"global_seq": [0, 4], "offset": [0, 0], "n_tokens": [4, 4], "item_index": [0, 0],
                               "payload_index": [0, 1], "edit": ["insert", "insert"], "reserve_seq": -1,
                               "noise_seed": -1, "noise_std": 0.0})
    insertion = insertion_checksums(np.array([5, 6, 7, 8], np.uint16), np.array([0, 2, 4]), EOS)
    planned = planned_checksums(placements, insertion=insertion, reserve_window=None)
    assert planned.tolist() == [token_checksum([EOS, 5, 6, EOS]), token_checksum([EOS, 7, 8, EOS])]
    applied = placements.assign(step=[0, 1], checksum=planned[::-1])  # the paraphrases swapped
    assert check_applied(placements, applied, 4, planned).wrong_tokens == 2
