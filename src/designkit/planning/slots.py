"""Controller slots: token spans the plan reserves in every control interval (KA, Algorithm 1).

A controlled experiment (``ExperimentSpec.controller``) decides its doses during training,
so the plan cannot place its insertions. It reserves room for them instead: in every
control interval (steps ``[k·every, (k+1)·every)``), ``slots_per_interval`` spans of
``slot_tokens`` positions (the experiment's longest payload with its EOS wrappers), packed
side by side into whole run sequences that no other edit touches. A slot the controller
leaves unfilled trains as ordinary corpus text. ``reserved.parquet`` lists every slot with
its ``interval``; the budget table counts their full capacity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from designkit.controllers import SLOT_USE
from designkit.errors import InputError


def reserve_slots(
    experiment: str,
    *,
    every: int,
    slots_per_interval: int,
    slot_tokens: int,
    steps: int,
    global_batch: int,
    seq_len: int,
    blocked: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The slots of one experiment, one row each (``reserved.parquet`` columns), sorted by
    (interval, global_seq, offset). Sequences in ``blocked`` are never used."""
    per_sequence = seq_len // slot_tokens
    if per_sequence < 1:
        raise InputError(None, "run.seq_len", f"expected room for a controller slot of {slot_tokens} tokens in a sequence")
    n_seqs = -(-slots_per_interval // per_sequence)
    blocked_set = np.unique(np.asarray(blocked, dtype=np.int64))
    parts = []
    n_intervals = -(-steps // every)
    for k in range(n_intervals):
        lo, hi = k * every * global_batch, min(steps, (k + 1) * every) * global_batch
        free = np.setdiff1d(np.arange(lo, hi, dtype=np.int64), blocked_set, assume_unique=True)
        if len(free) < n_seqs:
            raise InputError(None, f"experiments.{experiment}", f"expected {n_seqs} free sequences for controller slots in interval {k}, found {len(free)}")
        seqs = np.sort(rng.choice(free, size=n_seqs, replace=False))
        seq = np.repeat(seqs, per_sequence)[:slots_per_interval]
        offset = np.tile(np.arange(per_sequence, dtype=np.int32) * slot_tokens, n_seqs)[:slots_per_interval]
        parts.append(pd.DataFrame({"global_seq": seq, "offset": offset, "interval": np.int32(k)}))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"global_seq": [], "offset": [], "interval": []})
    return pd.DataFrame({
        "reserve_seq": np.full(len(frame), -1, np.int64),
        "use": SLOT_USE,
        "global_seq": frame["global_seq"].to_numpy(np.int64),
        "offset": frame["offset"].to_numpy(np.int32),
        "n_tokens": np.full(len(frame), slot_tokens, np.int32),
        "experiment": experiment,
        "interval": frame["interval"].to_numpy(np.int32),
    })  # fmt: skip
