"""`applied.parquet` against the plan's placements: did the run train exactly the planned edits?

The engine already stops a run whose log disagrees; `analyze` checks again because a
disagreement means the treatment the items received is unknown.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class AppliedCheck:
    """`applied.parquet` against the plan's placements: the same multiset of edits?"""

    planned: int
    applied: int
    missing: int
    """Planned edits not in the applied log."""
    extra: int
    """Applied edits not in the plan."""
    wrong_step: int
    """Applied edits logged at a step other than global_seq // global_batch."""
    planned_by_edit: dict[str, int]
    applied_by_edit: dict[str, int]
    example: str = ""
    """One differing edit, `(global_seq, offset, item_index, edit)`, for the error message."""

    @property
    def agrees(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.wrong_step == 0 and self.planned == self.applied

    def describe(self) -> str:
        if self.agrees:
            return f"applied log agrees with the plan: {self.applied} edits"
        parts = [f"{self.planned} edits planned, {self.applied} applied", f"{self.missing} planned but not applied",
                 f"{self.extra} applied but not planned"]
        if self.wrong_step:
            parts.append(f"{self.wrong_step} logged at the wrong step")
        example = f"; e.g. {self.example}" if self.example else ""
        return "applied log differs from the plan: " + ", ".join(parts) + example

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "agrees": self.agrees}


EDIT_KEY = ("global_seq", "offset", "item_index", "edit")


def check_applied(placements: pd.DataFrame, applied: pd.DataFrame, global_batch: int) -> AppliedCheck:
    """Compare the multisets of `(global_seq, offset, item_index, edit)` of plan and run."""
    planned_counts = _edit_counts(placements)
    applied_counts = _edit_counts(applied)
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
        wrong = applied["step"].astype("int64") != expected_step
        wrong_step = int(wrong.sum())
        if wrong_step and not example:
            row = applied[wrong].iloc[0]
            example = f"global_seq {int(row['global_seq'])} logged at step {int(row['step'])}, trained at step {int(row['global_seq']) // global_batch}"
    return AppliedCheck(
        planned=len(placements), applied=len(applied), missing=int(missing.sum()), extra=int(extra.sum()),
        wrong_step=wrong_step,
        planned_by_edit={str(k): int(v) for k, v in placements["edit"].astype(str).value_counts().sort_index().items()},
        applied_by_edit={str(k): int(v) for k, v in applied["edit"].astype(str).value_counts().sort_index().items()},
        example=example,
    )


def _edit_counts(frame: pd.DataFrame) -> pd.Series:
    """How often each `(global_seq, offset, item_index, edit)` occurs."""
    keys = pd.DataFrame({c: frame[c].astype("int64").to_numpy() for c in EDIT_KEY[:3]})
    keys["edit"] = frame["edit"].astype(str).to_numpy()
    return keys.value_counts()


def _key_text(key: tuple) -> str:
    return "(" + ", ".join(f"{name}={value}" for name, value in zip(EDIT_KEY, key)) + ")"
