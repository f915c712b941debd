"""The reserve region, handed out in disjoint, named windows.

The corpus's tail ``[train_tokens, n_tokens)`` is never read by training except through
reserve windows (docs/formats.md): the replacement of a removed sequence (MemV removal, FC
batch replacement), an i.i.d. control text, a forgetting batch. Each use takes its windows
from one ``ReserveAllocator``, which never hands out a window twice, so no two uses can
draw the same tokens. ``table`` is what ``reserved.parquet`` records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from designkit.errors import InputError

RESERVED_COLUMNS = ("reserve_seq", "use", "global_seq", "offset", "n_tokens", "experiment", "interval")


class ReserveAllocator:
    """Windows ``[0, n_windows)`` of the reserve region (window ``r`` is tokens
    ``train_tokens + r·(seq_len+1)`` onwards), each given to at most one named use."""

    def __init__(self, n_windows: int, window_tokens: int):
        self.n_windows = int(n_windows)
        self.window_tokens = int(window_tokens)
        self._taken = np.zeros(self.n_windows, dtype=bool)
        self._rows: list[pd.DataFrame] = []

    @property
    def n_free(self) -> int:
        return int(self.n_windows - self._taken.sum())

    def take(
        self,
        use: str,
        n: int,
        rng: np.random.Generator,
        *,
        experiment: str = "",
        global_seq: np.ndarray | None = None,
    ) -> np.ndarray:
        """``n`` free windows drawn uniformly without replacement, now owned by ``use``.

        ``global_seq`` (one per window) names the run sequence a window replaces, if any.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"expected a non-negative number of windows, got {n}")
        if n > self.n_free:
            raise InputError(
                None, "run.reserve_fraction",
                f"expected room for {n:,} reserve windows of {self.window_tokens} tokens for {use}, "
                f"{self.n_free:,} of {self.n_windows:,} are left (raise run.reserve_fraction)",
            )
        free = np.flatnonzero(~self._taken)
        chosen = np.sort(rng.choice(free, size=n, replace=False)) if n else np.zeros(0, dtype=np.int64)
        self._taken[chosen] = True
        seqs = np.full(n, -1, dtype=np.int64) if global_seq is None else np.asarray(global_seq, dtype=np.int64)
        if len(seqs) != n:
            raise ValueError(f"expected one global_seq per window ({n}), got {len(seqs)}")
        self._rows.append(
            pd.DataFrame(
                {
                    "reserve_seq": chosen.astype(np.int64),
                    "use": use,
                    "global_seq": seqs,
                    "offset": np.zeros(n, dtype=np.int32),
                    "n_tokens": np.full(n, self.window_tokens, dtype=np.int32),
                    "experiment": experiment,
                    "interval": np.full(n, -1, dtype=np.int32),  # controller slots only (planning.slots)
                }
            )
        )
        return chosen.astype(np.int64)

    def record_replacements(self, windows: np.ndarray, global_seq: np.ndarray) -> None:
        """Name the run sequence each of ``windows`` (already taken) replaces, in the table."""
        where = dict(zip(np.asarray(windows, dtype=np.int64).tolist(), np.asarray(global_seq, dtype=np.int64).tolist()))
        for frame in self._rows:
            hit = frame["reserve_seq"].isin(list(where))
            if hit.any():
                frame.loc[hit, "global_seq"] = frame.loc[hit, "reserve_seq"].map(where).to_numpy(np.int64)

    def table(self) -> pd.DataFrame:
        """Every window handed out, by reserve window index (``reserved.parquet``'s rows)."""
        if not self._rows:
            return empty_reserved()
        frame = pd.concat(self._rows, ignore_index=True)
        return frame.sort_values("reserve_seq", kind="stable").reset_index(drop=True)[list(RESERVED_COLUMNS)]


def empty_reserved() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "reserve_seq": np.zeros(0, np.int64),
            "use": np.zeros(0, object),
            "global_seq": np.zeros(0, np.int64),
            "offset": np.zeros(0, np.int32),
            "n_tokens": np.zeros(0, np.int32),
            "experiment": np.zeros(0, object),
            "interval": np.zeros(0, np.int32),
        }
    )
