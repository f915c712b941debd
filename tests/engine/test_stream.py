"""The injecting stream: base order, edit application and rank slicing, on synthetic corpora.

The synthetic corpus holds its own positions (token ``i`` is ``i``), so every token of a
batch says exactly where it was read from. Payload and EOS ids lie above every position.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.stream import INSERT, NOISE, REMOVE, InjectingStream, PlanEdits

EOS = 4_000_000_000
PAYLOAD_BASE = 3_000_000_000


def _random_edits(rng, n_sequences, seq_len, n_reserve, n_items, payload_len) -> tuple[PlanEdits, dict]:
    """Valid non-overlapping edits: per edited sequence a remove, a noise, or 1-3 insertions."""
    rows = []
    edited = rng.choice(n_sequences, size=min(n_sequences, rng.integers(0, 3 * n_sequences // 4 + 1)), replace=False)
    for g in np.sort(edited):
        kind = rng.choice(["insert", "insert", "remove", "noise"])
        if kind == "remove" and n_reserve:
            rows.append((g, 0, seq_len + 1, -1, REMOVE, int(rng.integers(n_reserve)), -1))
        elif kind == "noise":
            rows.append((g, 0, seq_len + 1, int(rng.integers(n_items)), NOISE, -1, int(rng.integers(2**31))))
        else:
            start = 0
            for _ in range(rng.integers(1, 4)):
                item = int(rng.integers(n_items))
                n = int(payload_len[item]) + 2
                if start + n > seq_len:
                    break
                offset = int(rng.integers(start, seq_len - n + 1))
                rows.append((g, offset, n, item, INSERT, -1, -1))
                start = offset + n
    cols = list(zip(*rows)) if rows else [[]] * 7
    edits = PlanEdits(
        global_seq=np.asarray(cols[0], np.int64),
        offset=np.asarray(cols[1], np.int32),
        n_tokens=np.asarray(cols[2], np.int32),
        item_index=np.asarray(cols[3], np.int32),
        payload_index=np.where(np.asarray(cols[4], np.int8) == INSERT, np.asarray(cols[3], np.int32), -1).astype(np.int32),  # one payload per item
        edit=np.asarray(cols[4], np.int8),
        reserve_seq=np.asarray(cols[5], np.int64),
        noise_seed=np.asarray(cols[6], np.int64),
        noise_std=np.where(np.asarray(cols[4], np.int8) == NOISE, 0.5, 0.0).astype(np.float32),
        item_ids=np.array([f"x/{i}" for i in range(n_items)], dtype=object),
    )
    return edits, {"rows": rows}


def _stream(rng, *, seq_len, global_batch, n_windows, n_reserve, steps, world_size=1, rank=0, with_edits=True):
    window = seq_len + 1
    train_tokens = n_windows * window + int(rng.integers(0, window))  # a ragged tail is never read
    tokens = np.arange(train_tokens + n_reserve * window, dtype=np.uint32)
    n_items = 5
    payload_len = rng.integers(1, max(2, seq_len // 3), size=n_items)
    payload_index = np.r_[0, np.cumsum(payload_len)].astype(np.int64)
    payload_tokens = (PAYLOAD_BASE + np.arange(payload_index[-1])).astype(np.uint32)
    n_sequences = steps * global_batch
    edits = _random_edits(rng, n_sequences, seq_len, n_reserve, n_items, payload_len)[0] if with_edits else None
    stream = InjectingStream(
        tokens, train_tokens=train_tokens, seq_len=seq_len, global_batch=global_batch, n_sequences=n_sequences, seed=int(rng.integers(2**31)),
        eos_id=EOS, edits=edits, payload_tokens=payload_tokens, payload_index=payload_index, rank=rank, world_size=world_size,
    )  # fmt: skip
    return stream


geometry = dict(
    seq_len=st.integers(4, 40),
    global_batch=st.sampled_from([1, 2, 4, 6, 8]),
    n_windows=st.integers(1, 30),
    n_reserve=st.integers(0, 5),
    steps=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)


@given(**geometry)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_each_epoch_visits_every_training_window_once(seq_len, global_batch, n_windows, n_reserve, steps, seed):
    stream = _stream(np.random.default_rng(seed), seq_len=seq_len, global_batch=global_batch, n_windows=n_windows, n_reserve=n_reserve, steps=steps)
    n_epochs = -(-stream.n_sequences // stream.n_windows)
    windows = stream.windows(np.arange(n_epochs * stream.n_windows))
    for epoch in windows.reshape(n_epochs, stream.n_windows):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(stream.n_windows))


@given(**geometry)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sequences_are_windows_with_exactly_the_plan_edits_applied(seq_len, global_batch, n_windows, n_reserve, steps, seed):
    stream = _stream(np.random.default_rng(seed), seq_len=seq_len, global_batch=global_batch, n_windows=n_windows, n_reserve=n_reserve, steps=steps)
    window = seq_len + 1
    e = stream.edits
    out, lo, hi = stream.sequences(0, stream.n_sequences)
    assert (lo, hi) == (0, len(e))
    # expected: base windows, then a slow per-edit reference
    base = stream.windows(np.arange(stream.n_sequences)) * window
    expected = base[:, None] + np.arange(window)
    for k in range(len(e)):
        g = e.global_seq[k]
        if e.edit[k] == REMOVE:
            start = stream.train_tokens + e.reserve_seq[k] * window
            expected[g] = np.arange(start, start + window)
        elif e.edit[k] == INSERT:
            off, n, item = e.offset[k], e.n_tokens[k], e.item_index[k]
            payload = PAYLOAD_BASE + np.arange(stream.payload_index[item], stream.payload_index[item + 1])
            expected[g, off : off + n] = np.r_[EOS, payload, EOS]
    np.testing.assert_array_equal(out, expected)
    # the reserve region is read only by remove edits, and the last window token is never edited
    removed = np.zeros(stream.n_sequences, bool)
    removed[e.global_seq[e.edit == REMOVE]] = True
    positions = out[~removed]
    assert (positions[positions < PAYLOAD_BASE] < stream.train_tokens).all()
    assert (out[~removed, -1] < stream.train_tokens).all()


@given(**geometry, world=st.sampled_from([1, 2, 3]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rank_slices_concatenate_to_the_one_process_batch(seq_len, global_batch, n_windows, n_reserve, steps, seed, world):
    if global_batch % world:
        world = 1
    kwargs = dict(seq_len=seq_len, global_batch=global_batch, n_windows=n_windows, n_reserve=n_reserve, steps=steps)
    single = _stream(np.random.default_rng(seed), **kwargs)
    ranks = [_stream(np.random.default_rng(seed), **kwargs, world_size=world, rank=r) for r in range(world)]
    for step in range(steps):
        whole = single.batch(step)
        parts = [s.batch(step) for s in ranks]
        np.testing.assert_array_equal(np.concatenate([p.tokens for p in parts]), whole.tokens)
        # every edit of the global batch is applied by exactly one rank
        assert parts[0].edit_lo == whole.edit_lo and parts[-1].edit_hi == whole.edit_hi
        assert sum(p.edit_hi - p.edit_lo for p in parts) == whole.edit_hi - whole.edit_lo
        noise = np.concatenate([p.noise_rows + p.first_seq for p in parts])
        np.testing.assert_array_equal(noise, whole.noise_rows + whole.first_seq)


def test_noise_edits_reach_the_batch_as_row_seed_and_std():
    stream = _stream(np.random.default_rng(5), seq_len=16, global_batch=4, n_windows=20, n_reserve=2, steps=10)
    e = stream.edits
    noisy = np.flatnonzero(e.edit == NOISE)
    assert len(noisy), "the seed should give at least one noise edit"
    k = noisy[0]
    batch = stream.batch(int(e.global_seq[k]) // 4)
    row = int(e.global_seq[k]) - batch.first_seq
    assert row in batch.noise_rows.tolist()
    i = batch.noise_rows.tolist().index(row)
    assert batch.noise_seeds[i] == e.noise_seed[k] and batch.noise_stds[i] == pytest.approx(0.5)


def test_injected_token_count_sums_insertions_of_the_global_batches():
    stream = _stream(np.random.default_rng(11), seq_len=32, global_batch=4, n_windows=50, n_reserve=3, steps=8)
    e = stream.edits
    per_step = np.bincount(e.global_seq // 4, weights=np.where(e.edit == INSERT, e.n_tokens, 0), minlength=8)
    for a in range(8):
        for b in range(a, 9):
            assert stream.injected_tokens(a, b) == int(per_step[a:b].sum())


def test_stream_is_a_pure_function_of_the_step():
    a = _stream(np.random.default_rng(3), seq_len=20, global_batch=4, n_windows=9, n_reserve=2, steps=6)
    b = _stream(np.random.default_rng(3), seq_len=20, global_batch=4, n_windows=9, n_reserve=2, steps=6)
    later = [a.batch(s).tokens for s in (5, 2, 0)]
    np.testing.assert_array_equal(later[0], b.batch(5).tokens)
    np.testing.assert_array_equal(later[2], b.batch(0).tokens)


def test_cached_blocks_of_the_base_order_equal_the_permutation(monkeypatch):
    import engine.stream

    monkeypatch.setattr(engine.stream, "WINDOW_BLOCK", 3)  # many blocks, batches straddling them
    stream = _stream(np.random.default_rng(8), seq_len=8, global_batch=4, n_windows=10, n_reserve=0, steps=9, with_edits=False)
    direct = np.concatenate([stream._permutation(e)(np.arange(10)) for e in range(4)])
    for first in range(0, 36, 4):
        np.testing.assert_array_equal(stream.windows(np.arange(first, first + 4)), direct[first : first + 4])
    np.testing.assert_array_equal(stream.windows(np.arange(36)[::-1]), direct[:36][::-1])
