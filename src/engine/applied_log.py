"""Provenance: the log of every edit the run actually applied (``applied.parquet``).

Each rank records the edit rows of the batches it trained and writes them in chunks,
``applied/part-FIRST-LAST-rRANK.parquet`` for steps ``[FIRST, LAST]``, at every checkpoint
and every few steps, so a crash loses at most the current chunk. A resume drops the rows
of steps the run will train again. At the end rank 0 merges the chunks into
``applied.parquet`` and checks it against the plan: the same multiset of
``(global_seq, offset, item_index, edit)``. Any difference is an engine bug and stops the
run loudly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from designkit import atomic_files
from designkit.runfile import APPLIED_DIR, APPLIED_FILE
from designkit.runfile import APPLIED_SCHEMA as SCHEMA
from engine.stream import EDIT_NAMES, PlanEdits, StepBatch

_PART = re.compile(r"^part-(\d{8})-(\d{8})-r(\d{5})\.parquet$")


class AppliedLogMismatch(RuntimeError):
    """The edits applied differ from the plan's placements: the run is not the planned experiment."""


def _edit_rows(edits: PlanEdits, steps: np.ndarray, lo: np.ndarray, hi: np.ndarray, rank: int) -> pa.Table:
    counts = hi - lo
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.repeat(lo, counts) + np.arange(int(counts.sum()), dtype=np.int64) - first
    item_index = edits.item_index[rows]
    item_ids = np.append(edits.item_ids, "").astype(object)  # index -1 → ""
    return pa.table(
        {
            "step": np.repeat(steps, counts).astype(np.int64),
            "rank": np.full(len(rows), rank, dtype=np.int32),
            "global_seq": edits.global_seq[rows],
            "offset": edits.offset[rows],
            "n_tokens": edits.n_tokens[rows],
            "item_index": item_index,
            "item_id": pa.array(item_ids[item_index], type=pa.string()),
            "edit": pa.array(np.asarray(EDIT_NAMES, dtype=object)[edits.edit[rows]], type=pa.string()),
        },
        schema=SCHEMA,
    )


class AppliedLog:
    """One rank's applied edits since the last flush."""

    def __init__(self, run_dir: Path, edits: PlanEdits, rank: int):
        self.dir = Path(run_dir) / APPLIED_DIR
        self.edits = edits
        self.rank = rank
        self._first_step: int | None = None
        self._last_step: int | None = None
        self._pending: list[tuple[int, int, int]] = []  # (step, edit_lo, edit_hi)

    def record(self, batch: StepBatch) -> None:
        if self._first_step is None:
            self._first_step = batch.step
        self._last_step = batch.step
        if batch.edit_hi > batch.edit_lo:
            self._pending.append((batch.step, batch.edit_lo, batch.edit_hi))

    def flush(self) -> None:
        """Write the steps recorded since the last flush as one chunk (also when it holds no edit)."""
        if self._first_step is None:
            return
        pending = np.asarray(self._pending, dtype=np.int64).reshape(-1, 3)
        table = _edit_rows(self.edits, pending[:, 0], pending[:, 1], pending[:, 2], self.rank)
        name = f"part-{self._first_step:08d}-{self._last_step:08d}-r{self.rank:05d}.parquet"
        with atomic_files.atomic_path(self.dir / name) as tmp:
            pq.write_table(table, tmp)
        self._first_step = self._last_step = None
        self._pending = []


def _parts(run_dir: Path) -> list[tuple[Path, int, int]]:
    root = Path(run_dir) / APPLIED_DIR
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        match = _PART.match(path.name)
        if match:
            found.append((path, int(match.group(1)), int(match.group(2))))
    return found


def truncate(run_dir: Path, resume_step: int) -> None:
    """Drop the logged rows of steps ``>= resume_step``: the resumed run applies them again."""
    for path, first, last in _parts(run_dir):
        if first >= resume_step:
            path.unlink()
        elif last >= resume_step:
            table = pq.read_table(path)
            kept = table.filter(pc.less(table["step"], resume_step))
            name = f"part-{first:08d}-{resume_step - 1:08d}-{path.name.rsplit('-', 1)[1]}"
            with atomic_files.atomic_path(path.with_name(name)) as tmp:
                pq.write_table(kept, tmp)
            if path.name != name:
                path.unlink()
    for stray in (Path(run_dir) / APPLIED_DIR).glob(".*.tmp"):
        stray.unlink(missing_ok=True)


def merge(run_dir: Path) -> pa.Table:
    """All chunks as one table sorted by (global_seq, offset, edit), duplicates dropped."""
    tables = [pq.read_table(path) for path, _, _ in _parts(run_dir)]
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    frame = table.to_pandas()
    # a chunk written twice (a crash between flush and checkpoint, then a resume) must count once
    frame = frame.drop_duplicates(subset=["global_seq", "offset", "item_index", "edit"], keep="last")
    frame = frame.sort_values(["global_seq", "offset", "edit"], kind="stable").reset_index(drop=True)
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False).replace_schema_metadata(None)


def check_against_plan(table: pa.Table, edits: PlanEdits) -> None:
    """Raise AppliedLogMismatch unless the applied edits are exactly the plan's edits."""
    code = {name: i for i, name in enumerate(EDIT_NAMES)}
    applied = np.rec.fromarrays(
        [
            table["global_seq"].to_numpy().astype(np.int64),
            table["offset"].to_numpy().astype(np.int64),
            table["item_index"].to_numpy().astype(np.int64),
            np.array([code[e] for e in table["edit"].to_pylist()], dtype=np.int64),
        ],
        names="global_seq,offset,item_index,edit",
    )
    planned = np.rec.fromarrays(
        [edits.global_seq, edits.offset.astype(np.int64), edits.item_index.astype(np.int64), edits.edit.astype(np.int64)],
        names="global_seq,offset,item_index,edit",
    )
    applied.sort()
    planned.sort()
    if len(applied) == len(planned) and np.array_equal(applied, planned):
        return
    missing = np.setdiff1d(planned, applied)
    extra = np.setdiff1d(applied, planned)
    example = f"; e.g. planned but not applied: {missing[0].tolist()}" if len(missing) else (f"; e.g. applied but not planned: {extra[0].tolist()}" if len(extra) else "")
    raise AppliedLogMismatch(
        f"applied log differs from the plan: {len(planned)} planned edits, {len(applied)} applied, "
        f"{len(missing)} missing, {len(extra)} not in the plan{example} (global_seq, offset, item_index, edit)"
    )


def finalize(run_dir: Path, edits: PlanEdits) -> pa.Table:
    """Merge the chunks into ``applied.parquet`` (atomically) and check it against the plan."""
    table = merge(run_dir)
    with atomic_files.atomic_path(Path(run_dir) / APPLIED_FILE) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    check_against_plan(table, edits)
    return table
