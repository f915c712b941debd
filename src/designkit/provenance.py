"""Provenance: did the run train the plan's edits, with the plan's tokens, at the plan's steps?

The engine logs every edit it applied (``applied.parquet``, docs/formats.md) together with
a checksum of what the model actually received, read back from the trained batch after
the edit: for ``insert`` and ``remove`` the tokens of the edited span
``[offset, offset + n_tokens)``, for noise (a ``noise`` edit, or an insert with
``noise_std > 0``) the parameters handed to the embedding-noise hook (seed, std, span). ``check_applied`` compares that log with the plan, independently
of the data stream that made the batches:

- the same multiset of edits ``(global_seq, offset, item_index, payload_index, edit)``;
- each logged at step ``global_seq // global_batch``;
- each with the checksum the plan implies: ``EOS + payload + EOS`` of its payload
  (``payload_index``, a row of ``payloads.parquet``; tokens from ``payload_tokens.npy``), the reserve window that replaces a removed sequence (the
  corpus), and the planned noise parameters.

An edit at the wrong offset, with the wrong payload, or on the wrong step leaves the
planned span with other tokens than the plan's, so its checksum differs. The one check
serves ``designkit train`` (a mismatch stops the run) and ``designkit analyze`` (a mismatch
refuses the report). No torch: the analysis host needs none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

EDIT_KEY = ("global_seq", "offset", "item_index", "payload_index", "edit")

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_POSITION = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def span_checksums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 checksum of each span ``values[start : start + length]`` of a flat integer array.

    Position-sensitive (each value is mixed with its index in the span) and length-sensitive,
    so a shifted, reordered, truncated or substituted span gets another checksum (up to
    64-bit collisions). Vectorised: one pass over all spans' values.
    """
    values = np.asarray(values)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(total, dtype=np.int64) - first
    flat = values[np.repeat(starts, lengths) + position].astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _mix(flat * _GOLDEN + position.view(np.uint64) * _POSITION + np.uint64(1))
        # per-span sums as differences of one wrapping running sum (zero-length spans give 0)
        running = np.concatenate([np.zeros(1, np.uint64), np.cumsum(mixed, dtype=np.uint64)])
        ends = np.cumsum(lengths)
        sums = running[ends] - running[ends - lengths]
        return _mix(sums ^ (lengths.view(np.uint64) * _GOLDEN)).view(np.int64)


def token_checksum(tokens: Sequence[int] | np.ndarray) -> int:
    """The checksum of one token span (``span_checksums`` of a single span)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    return int(span_checksums(tokens, np.zeros(1, np.int64), np.array([len(tokens)]))[0])


def insertion_checksums(payload_tokens: np.ndarray, payload_index: np.ndarray, eos_id: int) -> np.ndarray:
    """Per payload, the checksum of the tokens an insertion of it writes: ``EOS + payload + EOS``."""
    payload_index = np.asarray(payload_index, dtype=np.int64)
    n_items = len(payload_index) - 1
    lengths = np.diff(payload_index)
    # one flat array holding every item's wrapped payload
    wrapped_starts = payload_index[:-1] + 2 * np.arange(n_items, dtype=np.int64)
    flat = np.full(int(payload_index[-1]) + 2 * n_items, int(eos_id), dtype=np.int64)
    inner = np.repeat(wrapped_starts + 1, lengths) + (np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(payload_index[:-1], lengths))
    flat[inner] = np.asarray(payload_tokens, dtype=np.int64)[: int(payload_index[-1])]
    return span_checksums(flat, wrapped_starts, lengths + 2)


def noise_checksums(seed: np.ndarray, std: np.ndarray, offset: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
    """Per noise edit, the checksum of its parameters ``(seed, std as float32 bits, offset, n_tokens)``."""
    seed = np.asarray(seed, dtype=np.int64)
    params = np.stack(
        [
            seed,
            np.asarray(std, dtype=np.float32).view(np.int32).astype(np.int64),
            np.asarray(offset, dtype=np.int64),
            np.asarray(n_tokens, dtype=np.int64),
        ],
        axis=1,
    ).ravel()
    return span_checksums(params, np.arange(len(seed), dtype=np.int64) * 4, np.full(len(seed), 4, dtype=np.int64))


def planned_checksums(
    placements: pd.DataFrame,
    *,
    insertion: np.ndarray,
    reserve_window: Callable[[np.ndarray], np.ndarray] | None,
) -> np.ndarray:
    """The checksum each placement must have after its edit, from the plan alone.

    ``insert``: ``insertion[payload_index]`` (``insertion_checksums``); ``remove``: the reserve
    window that replaces the sequence, ``reserve_window(reserve_seqs)`` giving its token rows
    (the plan's corpus; called only when the plan removes sequences); ``noise``: its noise
    parameters. An insert that also carries noise (``noise_std > 0``, a watermark on the
    inserted span) has both, combined by XOR.
    """
    edit = placements["edit"].astype(str).to_numpy()
    out = np.zeros(len(placements), dtype=np.int64)
    ins = edit == "insert"
    out[ins] = insertion[placements["payload_index"].to_numpy(np.int64)[ins]]
    rm = edit == "remove"
    if rm.any():
        if reserve_window is None:
            raise ValueError("the plan removes sequences: checking them needs the corpus's reserve windows")
        windows = np.asarray(reserve_window(placements["reserve_seq"].to_numpy(np.int64)[rm]), dtype=np.int64)
        width = windows.shape[1]
        out[rm] = span_checksums(windows.ravel(), np.arange(len(windows), dtype=np.int64) * width, np.full(len(windows), width))
    std = placements["noise_std"].to_numpy(np.float32) if "noise_std" in placements.columns else np.zeros(len(placements), np.float32)
    noisy = (edit == "noise") | (std > 0)
    if noisy.any():
        out[noisy] ^= noise_checksums(
            placements["noise_seed"].to_numpy(np.int64)[noisy], std[noisy],
            placements["offset"].to_numpy(np.int64)[noisy], placements["n_tokens"].to_numpy(np.int64)[noisy],
        )
    return out


def plan_checksums(plan) -> np.ndarray:
    """``planned_checksums`` of a ``designkit.planning.planfile.Plan``, aligned with its placements."""
    placements = plan.placements()
    payload_tokens, payload_index = plan.payload
    eos_id = int(plan.meta["corpus"]["eos_id"])

    def reserve_window(reserve_seqs: np.ndarray) -> np.ndarray:
        # the reserve region starts at train_tokens; windows are seq_len + 1 tokens (docs/formats.md)
        tokens = plan.corpus(verify_tokens=False).tokens
        window = plan.seq_len + 1
        starts = int(plan.meta["corpus"]["train_tokens"]) + reserve_seqs.astype(np.int64) * window
        return np.asarray(tokens[starts[:, None] + np.arange(window, dtype=np.int64)], dtype=np.int64)

    return planned_checksums(
        placements,
        insertion=insertion_checksums(payload_tokens, payload_index, eos_id),
        reserve_window=reserve_window,
    )


@dataclass(frozen=True)
class AppliedCheck:
    """``applied.parquet`` against the plan: the same edits, at their steps, with the plan's tokens?"""

    planned: int
    applied: int
    missing: int
    """Planned edits not in the applied log."""
    extra: int
    """Applied edits not in the plan."""
    wrong_step: int
    """Applied edits logged at a step other than global_seq // global_batch."""
    wrong_tokens: int
    """Applied edits whose checksum read back from the trained batch differs from the plan's."""
    planned_by_edit: dict[str, int]
    applied_by_edit: dict[str, int]
    example: str = ""
    """One differing edit, for the error message."""

    @property
    def agrees(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.wrong_step == 0 and self.wrong_tokens == 0 and self.planned == self.applied

    def describe(self) -> str:
        if self.agrees:
            return f"applied log agrees with the plan: {self.applied} edits, each with the plan's tokens"
        parts = [f"{self.planned} edits planned, {self.applied} applied", f"{self.missing} planned but not applied",
                 f"{self.extra} applied but not planned"]
        if self.wrong_step:
            parts.append(f"{self.wrong_step} logged at the wrong step")
        if self.wrong_tokens:
            parts.append(f"{self.wrong_tokens} trained other tokens than the plan's")
        example = f"; e.g. {self.example}" if self.example else ""
        return "applied log differs from the plan: " + ", ".join(parts) + example

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "agrees": self.agrees}


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    keys = pd.DataFrame({c: frame[c].astype("int64").to_numpy() for c in EDIT_KEY[:-1]})
    keys["edit"] = frame["edit"].astype(str).to_numpy()
    return keys


def _key_text(key: Sequence[Any]) -> str:
    return "(" + ", ".join(f"{name}={value}" for name, value in zip(EDIT_KEY, key)) + ")"


def check_applied(placements: pd.DataFrame, applied: pd.DataFrame, global_batch: int, planned_checksum: np.ndarray) -> AppliedCheck:
    """Compare the applied log with the plan's placements and their ``planned_checksum``s."""
    planned_keys, applied_keys = _keys(placements), _keys(applied)
    planned_counts, applied_counts = planned_keys.value_counts(), applied_keys.value_counts()
    both = pd.concat([planned_counts.rename("planned"), applied_counts.rename("applied")], axis=1).fillna(0)
    missing = (both["planned"] - both["applied"]).clip(lower=0)
    extra = (both["applied"] - both["planned"]).clip(lower=0)
    example = ""
    if missing.sum():
        example = f"planned but not applied: {_key_text(missing[missing > 0].index[0])}"
    elif extra.sum():
        example = f"applied but not planned: {_key_text(extra[extra > 0].index[0])}"
    wrong_step = 0
    if len(applied):
        expected_step = applied["global_seq"].astype("int64") // int(global_batch)
        wrong = (applied["step"].astype("int64") != expected_step).to_numpy()
        wrong_step = int(wrong.sum())
        if wrong_step and not example:
            row = applied[wrong].iloc[0]
            example = f"global_seq {int(row['global_seq'])} logged at step {int(row['step'])}, trained at step {int(row['global_seq']) // global_batch}"
    # checksums of the edits in both; placements' keys are unique (edits never overlap)
    matched = applied_keys.assign(checksum=applied["checksum"].astype("int64").to_numpy()).merge(
        planned_keys.assign(planned_checksum=np.asarray(planned_checksum, dtype=np.int64)), on=list(EDIT_KEY), how="inner"
    )
    differs = matched["checksum"].to_numpy() != matched["planned_checksum"].to_numpy()
    wrong_tokens = int(differs.sum())
    if wrong_tokens and not example:
        row = matched[differs].iloc[0]
        example = f"{_key_text([row[c] for c in EDIT_KEY])} trained tokens whose checksum is not the plan's"
    return AppliedCheck(
        planned=len(placements), applied=len(applied), missing=int(missing.sum()), extra=int(extra.sum()),
        wrong_step=wrong_step, wrong_tokens=wrong_tokens,
        planned_by_edit={str(k): int(v) for k, v in placements["edit"].astype(str).value_counts().sort_index().items()},
        applied_by_edit={str(k): int(v) for k, v in applied["edit"].astype(str).value_counts().sort_index().items()},
        example=example,
    )


def check_run(plan, applied: pd.DataFrame, controller_log: pd.DataFrame | None = None) -> AppliedCheck:
    """``check_applied`` of a run's applied log against the ``Plan`` it was trained from, plus
    the fills its controller logged (``controller.csv``).

    The fills are not taken from the applied log: they are re-derived from the logged
    decisions and the plan's reserved slots (``designkit.controllers.fills_from_log``, the
    function the engine fills with), so an insertion outside a slot, of another item, or
    beyond what the controller decided is refused like any unplanned edit.
    """
    placements, checksums = plan.placements(), plan_checksums(plan)
    if controller_log is not None and len(controller_log):
        from designkit.controllers import fills_from_log

        payload_tokens, payload_index = plan.payload
        first, n_payloads = plan.item_payloads
        controlled = np.unique(controller_log["item_index"].to_numpy(np.int64))
        fills = fills_from_log(plan.reserved(), controller_log, {int(i): int(n_payloads[i]) for i in controlled})
        lengths = np.diff(np.asarray(payload_index, dtype=np.int64))
        # a fill's payload is its item's next one in cyclic order (fills' ``payload``: the ordinal)
        payload = first[fills["item_index"].to_numpy(np.int64)] + fills["payload"].to_numpy(np.int64)
        fill_rows = pd.DataFrame({
            "global_seq": fills["global_seq"].to_numpy(np.int64),
            "offset": fills["offset"].to_numpy(np.int32),
            "n_tokens": (lengths[payload] + 2).astype(np.int32),
            "item_index": fills["item_index"].to_numpy(np.int32),
            "payload_index": payload.astype(np.int32),
            "edit": "insert",
        })  # fmt: skip
        insertion = insertion_checksums(payload_tokens, payload_index, int(plan.meta["corpus"]["eos_id"]))
        fill_checksums = insertion[payload]
        keep = ["global_seq", "offset", "n_tokens", "item_index", "payload_index", "edit"]
        placements = pd.concat([placements[keep].assign(edit=placements["edit"].astype(str)), fill_rows], ignore_index=True)
        checksums = np.concatenate([checksums, fill_checksums])
    return check_applied(placements, applied, plan.global_batch, checksums)


__all__ = [
    "AppliedCheck", "check_applied", "check_run", "insertion_checksums", "noise_checksums", "plan_checksums",
    "planned_checksums", "span_checksums", "token_checksum",
]
