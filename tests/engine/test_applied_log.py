"""The applied log: checksums read back from trained batches, chunks, truncation on resume,
merge with de-duplication, and the provenance check catching planted stream bugs."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from designkit.provenance import token_checksum
from designkit.runfile import APPLIED_COLUMNS
from engine import applied_log
from engine.applied_log import AppliedLog, AppliedLogMismatch
from engine.stream import EDIT_NAMES, INSERT, NOISE, REMOVE, InjectingStream, PlanEdits

SEQ_LEN, GLOBAL_BATCH, EOS = 16, 2, 0
WINDOW = SEQ_LEN + 1
TRAIN_TOKENS = 20 * WINDOW
CORPUS = (np.arange(TRAIN_TOKENS + 4 * WINDOW, dtype=np.int64) * 7919 % 97 + 1).astype(np.uint16)  # no EOS inside
PAYLOAD_TOKENS = np.array([50, 51, 52, 60, 61, 62, 70, 71, 72, 73], dtype=np.uint16)
PAYLOAD_INDEX = np.array([0, 3, 6, 10], dtype=np.int64)


def _edits() -> PlanEdits:
    return PlanEdits(
        global_seq=np.array([0, 1, 1, 3, 5, 6], np.int64),
        offset=np.array([2, 0, 9, 0, 4, 0], np.int32),
        n_tokens=np.array([5, 5, 6, WINDOW, 5, WINDOW], np.int32),
        item_index=np.array([0, 1, 2, -1, 1, 2], np.int32),
        payload_index=np.array([0, 1, 2, -1, 1, -1], np.int32),
        edit=np.array([INSERT, INSERT, INSERT, REMOVE, INSERT, NOISE], np.int8),
        reserve_seq=np.array([-1, -1, -1, 2, -1, -1], np.int64),
        noise_seed=np.array([-1, -1, -1, -1, -1, 9], np.int64),
        noise_std=np.array([0, 0, 0, 0, 0, 0.5], np.float32),
        item_ids=np.array(["a/0", "a/1", "b/0"], dtype=object),
    )


def _stream(edits: PlanEdits) -> InjectingStream:
    return InjectingStream(CORPUS, train_tokens=TRAIN_TOKENS, seq_len=SEQ_LEN, global_batch=GLOBAL_BATCH, n_sequences=8, seed=1,
                           eos_id=EOS, edits=edits, payload_tokens=PAYLOAD_TOKENS, payload_index=PAYLOAD_INDEX)


def _plan(edits: PlanEdits):
    """What the provenance check reads of a plan: placements, payload, items, corpus."""
    placements = pd.DataFrame({
        "global_seq": edits.global_seq, "offset": edits.offset, "n_tokens": edits.n_tokens, "item_index": edits.item_index,
        "payload_index": edits.payload_index,
        "edit": np.asarray(EDIT_NAMES)[edits.edit], "reserve_seq": edits.reserve_seq, "noise_seed": edits.noise_seed,
        "noise_std": edits.noise_std,
    })
    return SimpleNamespace(
        placements=lambda: placements, items=lambda: pd.DataFrame({"experiment": ["a", "a", "b"]}), experiments=[],
        payload=(PAYLOAD_TOKENS, PAYLOAD_INDEX), global_batch=GLOBAL_BATCH, seq_len=SEQ_LEN,
        meta={"corpus": {"eos_id": EOS, "train_tokens": TRAIN_TOKENS}},
        corpus=lambda verify_tokens=True: SimpleNamespace(tokens=CORPUS),
    )


def _log_steps(run_dir, stream: InjectingStream, edits: PlanEdits, steps, flush_after=()):
    """Log steps as train does: the log holds the plan's edits, the checksums come from the batches."""
    log = AppliedLog(run_dir, edits, rank=0)
    for step in steps:
        batch = stream.batch(step)
        log.record(batch, batch.tokens)
        if step in flush_after:
            log.flush()
    log.flush()


def test_finalized_log_holds_every_edit_with_its_step_and_the_trained_tokens_checksum(tmp_path):
    edits = _edits()
    _log_steps(tmp_path, _stream(edits), edits, range(4), flush_after={1})
    table, check = applied_log.finalize(tmp_path, _plan(edits))
    frame = pq.read_table(tmp_path / "applied.parquet").to_pandas()
    assert table.num_rows == len(frame) == len(edits) and check.agrees
    assert frame["step"].tolist() == (frame["global_seq"] // 2).tolist()
    assert frame["edit"].tolist() == ["insert", "insert", "insert", "remove", "insert", "noise"]
    assert frame["item_id"].tolist() == ["a/0", "a/1", "b/0", "", "a/1", "b/0"]
    assert tuple(frame.columns) == APPLIED_COLUMNS
    assert frame["checksum"].iloc[0] == token_checksum([EOS, 50, 51, 52, EOS])
    assert frame["checksum"].iloc[3] == token_checksum(CORPUS[TRAIN_TOKENS + 2 * WINDOW : TRAIN_TOKENS + 3 * WINDOW])


def test_a_missing_or_extra_edit_fails_the_plan_check(tmp_path):
    edits = _edits()
    stream = _stream(edits)
    _log_steps(tmp_path, stream, edits, range(3))  # step 3 (global_seq 6) never trained
    with pytest.raises(AppliedLogMismatch, match="1 planned but not applied"):
        applied_log.finalize(tmp_path, _plan(edits))
    _log_steps(tmp_path, stream, edits, [3])
    applied_log.finalize(tmp_path, _plan(edits))
    fewer = PlanEdits(**{k: (v[:-1] if k != "item_ids" else v) for k, v in dataclasses.asdict(edits).items()})
    with pytest.raises(AppliedLogMismatch, match="1 applied but not planned"):
        applied_log.finalize(tmp_path, _plan(fewer))


def test_truncate_drops_the_steps_a_resume_trains_again(tmp_path):
    edits = _edits()
    stream = _stream(edits)
    _log_steps(tmp_path, stream, edits, range(4), flush_after={0})  # chunks [0,0] and [1,3]
    applied_log.truncate(tmp_path, 2)
    names = sorted(p.name for p in (tmp_path / "applied").iterdir())
    assert names == ["part-00000000-00000000-r00000.parquet", "part-00000001-00000001-r00000.parquet"]
    assert applied_log.merge(tmp_path)["step"].to_pylist() == [0, 0, 0, 1]
    _log_steps(tmp_path, stream, edits, [2, 3])  # the resumed run
    applied_log.finalize(tmp_path, _plan(edits))


def test_merge_counts_a_chunk_written_twice_once(tmp_path):
    edits = _edits()
    _log_steps(tmp_path, _stream(edits), edits, range(4))
    part = next((tmp_path / "applied").iterdir())
    part.with_name("part-00000000-00000003-r00001.parquet").write_bytes(part.read_bytes())
    assert applied_log.finalize(tmp_path, _plan(edits))[0].num_rows == len(edits)


# ---------------------------------------------------------------------------------------
# planted bugs: the stream trains something else than the plan, the log names the plan's edits


def _planted(monkeypatch, bug: str) -> None:
    apply = InjectingStream._apply

    def wrong_offset(self, out, first_seq, lo, hi):
        original = self.edits
        self.edits = dataclasses.replace(original, offset=original.offset + (original.edit == INSERT))  # one token late
        try:
            apply(self, out, first_seq, lo, hi)
        finally:
            self.edits = original

    def wrong_payload(self, out, first_seq, lo, hi):
        original = self.payload_tokens
        self.payload_tokens = original.copy()
        self.payload_tokens[4] += 1  # one token of item 1's payload
        try:
            apply(self, out, first_seq, lo, hi)
        finally:
            self.payload_tokens = original

    def wrong_step(self, first_seq, end_seq):
        # the sequences carry the edits planned for the step before (the log still names this step's)
        seqs = np.arange(first_seq, end_seq, dtype=np.int64)
        out = self._gather(self.windows(seqs) * self.window)
        lo, hi = self.edits.span(first_seq, end_seq)
        earlier_lo, earlier_hi = self.edits.span(first_seq - self.global_batch, end_seq - self.global_batch)
        if earlier_hi > earlier_lo:
            apply(self, out, first_seq - self.global_batch, earlier_lo, earlier_hi)
        return out, lo, hi

    if bug == "sequences":
        monkeypatch.setattr(InjectingStream, "sequences", wrong_step)
    else:
        monkeypatch.setattr(InjectingStream, "_apply", {"offset": wrong_offset, "payload": wrong_payload}[bug])


@pytest.mark.parametrize(("bug", "wrong"), [("offset", 4), ("payload", 2), ("sequences", 5)])
def test_planted_stream_bugs_are_caught_by_the_checksums(tmp_path, monkeypatch, bug, wrong):
    """Each bug leaves the multiset of logged edits intact: only the read-back checksums see it
    (the noise edit's parameters reach the hook unchanged, so the wrong step spoils 5 of 6)."""
    edits = _edits()
    _planted(monkeypatch, bug)
    _log_steps(tmp_path, _stream(edits), edits, range(4))
    with pytest.raises(AppliedLogMismatch, match=f"0 planned but not applied, 0 applied but not planned, {wrong} trained other tokens"):
        applied_log.finalize(tmp_path, _plan(edits))


def test_noise_that_reaches_the_hook_with_another_std_is_caught(tmp_path):
    edits = _edits()
    stream = _stream(dataclasses.replace(edits, noise_std=edits.noise_std * 2))  # the hook gets std 1.0, the plan says 0.5
    _log_steps(tmp_path, stream, edits, range(4))
    with pytest.raises(AppliedLogMismatch, match="1 trained other tokens"):
        applied_log.finalize(tmp_path, _plan(edits))


def test_a_watermarked_insert_must_carry_both_its_tokens_and_its_noise(tmp_path):
    edits = _edits()
    watermarked = dataclasses.replace(edits, noise_std=np.where(np.arange(6) == 4, 0.2, edits.noise_std).astype(np.float32),
                                      noise_seed=np.where(np.arange(6) == 4, 4, edits.noise_seed))
    _log_steps(tmp_path / "ok", _stream(watermarked), watermarked, range(4))
    assert applied_log.finalize(tmp_path / "ok", _plan(watermarked))[1].agrees
    _log_steps(tmp_path / "bare", _stream(edits), watermarked, range(4))  # the stream drops the insert's noise
    with pytest.raises(AppliedLogMismatch, match="1 trained other tokens"):
        applied_log.finalize(tmp_path / "bare", _plan(watermarked))
