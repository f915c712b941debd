"""The applied log: chunks, truncation on resume, merge with de-duplication, the plan check."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine import applied_log
from engine.applied_log import AppliedLog, AppliedLogMismatch
from engine.stream import INSERT, NOISE, REMOVE, PlanEdits, StepBatch


def _edits() -> PlanEdits:
    g = np.array([0, 1, 1, 3, 5, 6], np.int64)
    return PlanEdits(
        global_seq=g,
        offset=np.array([2, 0, 9, 0, 4, 0], np.int32),
        n_tokens=np.array([5, 5, 6, 17, 5, 17], np.int32),
        item_index=np.array([0, 1, 0, -1, 1, 2], np.int32),
        edit=np.array([INSERT, INSERT, INSERT, REMOVE, INSERT, NOISE], np.int8),
        reserve_seq=np.array([-1, -1, -1, 0, -1, -1], np.int64),
        noise_seed=np.array([-1, -1, -1, -1, -1, 9], np.int64),
        noise_std=np.zeros(6, np.float32),
        item_ids=np.array(["a/0", "a/1", "b/0"], dtype=object),
    )


def _batch(edits: PlanEdits, step: int, global_batch: int = 2) -> StepBatch:
    lo, hi = edits.span(step * global_batch, (step + 1) * global_batch)
    empty = np.zeros(0, np.int64)
    return StepBatch(step, step * global_batch, np.zeros((global_batch, 3), np.int64), lo, hi, empty, empty, empty.astype(np.float32))


def _log_steps(run_dir, edits, steps, flush_after=()):
    log = AppliedLog(run_dir, edits, rank=0)
    for step in steps:
        log.record(_batch(edits, step))
        if step in flush_after:
            log.flush()
    log.flush()


def test_finalized_log_holds_every_edit_with_its_step_and_matches_the_plan(tmp_path):
    edits = _edits()
    _log_steps(tmp_path, edits, range(4), flush_after={1})
    table = applied_log.finalize(tmp_path, edits)
    frame = pq.read_table(tmp_path / "applied.parquet").to_pandas()
    assert table.num_rows == len(frame) == len(edits)
    assert frame["step"].tolist() == (frame["global_seq"] // 2).tolist()
    assert frame["edit"].tolist() == ["insert", "insert", "insert", "remove", "insert", "noise"]
    assert frame["item_id"].tolist() == ["a/0", "a/1", "a/0", "", "a/1", "b/0"]
    assert list(frame.columns) == ["step", "rank", "global_seq", "offset", "n_tokens", "item_index", "item_id", "edit"]


def test_a_missing_or_extra_edit_fails_the_plan_check(tmp_path):
    edits = _edits()
    _log_steps(tmp_path, edits, range(3))  # step 3 (global_seq 6) never trained
    with pytest.raises(AppliedLogMismatch, match="1 missing"):
        applied_log.finalize(tmp_path, edits)
    _log_steps(tmp_path, edits, [3])
    applied_log.finalize(tmp_path, edits)
    fewer = PlanEdits(**{k: (v[:-1] if k != "item_ids" else v) for k, v in edits.__dict__.items()})
    with pytest.raises(AppliedLogMismatch, match="1 not in the plan"):
        applied_log.finalize(tmp_path, fewer)


def test_truncate_drops_the_steps_a_resume_trains_again(tmp_path):
    edits = _edits()
    _log_steps(tmp_path, edits, range(4), flush_after={0})  # chunks [0,0] and [1,3]
    applied_log.truncate(tmp_path, 2)
    names = sorted(p.name for p in (tmp_path / "applied").iterdir())
    assert names == ["part-00000000-00000000-r00000.parquet", "part-00000001-00000001-r00000.parquet"]
    assert applied_log.merge(tmp_path)["step"].to_pylist() == [0, 0, 0, 1]
    _log_steps(tmp_path, edits, [2, 3])  # the resumed run
    applied_log.finalize(tmp_path, edits)


def test_merge_counts_a_chunk_written_twice_once(tmp_path):
    edits = _edits()
    _log_steps(tmp_path, edits, range(4))
    part = next((tmp_path / "applied").iterdir())
    part.with_name("part-00000000-00000003-r00001.parquet").write_bytes(part.read_bytes())
    assert applied_log.finalize(tmp_path, edits).num_rows == len(edits)
