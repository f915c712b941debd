"""Provenance: the log of every edit the run actually applied (``applied.parquet``).

For every edit of a batch it trained, a rank records the edit and a checksum of what the
model received, read back from the trained tokens after the edit: the tokens of the edited
span (``insert``, ``remove``) and the parameters the embedding-noise hook got (``noise``,
noisy inserts).
It writes them in chunks,
``applied/part-FIRST-LAST-rRANK.parquet`` for steps ``[FIRST, LAST]``, at every checkpoint
and every few steps, so a crash loses at most the current chunk. A resume drops the rows
of steps the run will train again. At the end rank 0 merges the chunks into
``applied.parquet`` and checks it against the plan with ``designkit.provenance.check_run``
(the same check ``designkit analyze`` runs): the plan's edits, at their steps, each with
the checksum the plan's tokens imply. Any difference is an engine bug and stops the run
loudly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from designkit import atomic_files
from designkit.provenance import AppliedCheck, check_run, noise_checksums, span_checksums
from designkit.runfile import APPLIED_DIR, APPLIED_FILE, controller_log
from designkit.runfile import APPLIED_SCHEMA as SCHEMA
from engine.stream import EDIT_NAMES, NOISE, PlanEdits, StepBatch

_PART = re.compile(r"^part-(\d{8})-(\d{8})-r(\d{5})\.parquet$")


class AppliedLogMismatch(RuntimeError):
    """The edits applied differ from the plan's placements: the run is not the planned experiment."""


def _edit_rows(edits: PlanEdits, steps: np.ndarray, lo: np.ndarray, hi: np.ndarray, rank: int, checksum: np.ndarray) -> pa.Table:
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
            "payload_index": edits.payload_index[rows],
            "edit": pa.array(np.asarray(EDIT_NAMES, dtype=object)[edits.edit[rows]], type=pa.string()),
            "checksum": checksum.astype(np.int64),
        },
        schema=SCHEMA,
    )


def applied_checksums(batch: StepBatch, tokens: np.ndarray, edits: PlanEdits, span: tuple[int, int] | None = None) -> np.ndarray:
    """Checksums of the batch's edits ``[edit_lo, edit_hi)`` as ``designkit.provenance`` defines
    them, read back from ``tokens`` (the rows this rank trained, after every edit) and from the
    noise the batch hands the embedding hook (``noise_rows``, ``noise_offsets``, …).
    ``span``: other rows of ``edits`` than the batch's plan edits (its controller fills)."""
    lo, hi = (batch.edit_lo, batch.edit_hi) if span is None else span
    rows = edits.global_seq[lo:hi] - batch.first_seq
    offset = edits.offset[lo:hi].astype(np.int64)
    n_tokens = edits.n_tokens[lo:hi].astype(np.int64)
    kind = edits.edit[lo:hi]
    tokens = np.ascontiguousarray(tokens)
    out = np.zeros(hi - lo, dtype=np.int64)
    spans = kind != NOISE
    out[spans] = span_checksums(tokens.reshape(-1), rows[spans] * tokens.shape[1] + offset[spans], n_tokens[spans])
    noisy = (kind == NOISE) | (edits.noise_std[lo:hi] > 0)
    if noisy.any():
        # what the hook receives for the edit's (row, offset); nothing: seed -1, std NaN
        where = {(int(r), int(o)): i for i, (r, o) in enumerate(zip(batch.noise_rows, batch.noise_offsets))}
        found = np.array([where.get((int(r), int(o)), -1) for r, o in zip(rows[noisy], offset[noisy])], dtype=np.int64)
        hit = found >= 0
        take = np.where(hit, found, 0)
        seeds = np.where(hit, batch.noise_seeds[take] if len(batch.noise_seeds) else -1, -1)
        stds = np.where(hit, batch.noise_stds[take] if len(batch.noise_stds) else np.nan, np.nan).astype(np.float32)
        lengths = np.where(hit, batch.noise_lengths[take] if len(batch.noise_lengths) else -1, -1)
        out[noisy] ^= noise_checksums(seeds, stds, offset[noisy], lengths)
    return out


class AppliedLog:
    """One rank's applied edits since the last flush."""

    def __init__(self, run_dir: Path, edits: PlanEdits, rank: int):
        self.dir = Path(run_dir) / APPLIED_DIR
        self.edits = edits
        self.rank = rank
        self._first_step: int | None = None
        self._last_step: int | None = None
        self._pending: list[tuple[int, int, int]] = []  # (step, edit_lo, edit_hi)
        self._checksums: list[np.ndarray] = []
        self._fills: list[pa.Table] = []

    def record(self, batch: StepBatch, tokens: np.ndarray) -> None:
        """Log the batch's edits with checksums read back from ``tokens``, the trained rows."""
        if self._first_step is None:
            self._first_step = batch.step
        self._last_step = batch.step
        if batch.edit_hi > batch.edit_lo:
            self._pending.append((batch.step, batch.edit_lo, batch.edit_hi))
            self._checksums.append(applied_checksums(batch, tokens, self.edits))
        if batch.fill_hi > batch.fill_lo:  # controller fills: insertions into reserved slots
            span = (batch.fill_lo, batch.fill_hi)
            checksum = applied_checksums(batch, tokens, batch.fills, span)
            steps, lo, hi = np.array([batch.step]), np.array([span[0]]), np.array([span[1]])
            self._fills.append(_edit_rows(batch.fills, steps, lo, hi, self.rank, checksum))

    def flush(self) -> None:
        """Write the steps recorded since the last flush as one chunk (also when it holds no edit)."""
        if self._first_step is None:
            return
        pending = np.asarray(self._pending, dtype=np.int64).reshape(-1, 3)
        checksum = np.concatenate(self._checksums) if self._checksums else np.zeros(0, dtype=np.int64)
        table = _edit_rows(self.edits, pending[:, 0], pending[:, 1], pending[:, 2], self.rank, checksum)
        if self._fills:
            table = pa.concat_tables([table, *self._fills])
        name = f"part-{self._first_step:08d}-{self._last_step:08d}-r{self.rank:05d}.parquet"
        with atomic_files.atomic_path(self.dir / name) as tmp:
            pq.write_table(table, tmp)
        self._first_step = self._last_step = None
        self._pending = []
        self._checksums = []
        self._fills = []


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
    frame = frame.drop_duplicates(subset=["global_seq", "offset", "item_index", "payload_index", "edit"], keep="last")
    frame = frame.sort_values(["global_seq", "offset", "edit"], kind="stable").reset_index(drop=True)
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False).replace_schema_metadata(None)


def finalize(run_dir: Path, plan) -> tuple[pa.Table, AppliedCheck]:
    """Merge the chunks into ``applied.parquet`` (atomically) and check it against the plan
    plus the controller's logged fills; AppliedLogMismatch unless it agrees."""
    table = merge(run_dir)
    with atomic_files.atomic_path(Path(run_dir) / APPLIED_FILE) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    check = check_run(plan, table.to_pandas(), controller_log(run_dir))
    if not check.agrees:
        raise AppliedLogMismatch(check.describe())
    return table, check
