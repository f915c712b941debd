"""A forgetting-curves design over a random-token corpus, shared by the forgetting tests."""

from __future__ import annotations

from pathlib import Path

from tiny_designs import TINY_MODEL


def forgetting_design(corpus: Path, *, steps: int, replace_at: dict[str, int], batches: int = 1, checkpoints=None, inloop_every=None, **training) -> dict:
    share = 1 / (len(replace_at) + 1)  # equal shares: every arm holds batches × global_batch windows
    arms = {"control": {"dose": 0, "share": share}} | {arm: {"dose": 1, "share": share} for arm in replace_at}
    return {
        "name": "fc",
        "seed": 5,
        "run": {
            "model": {"config": dict(TINY_MODEL)},
            "corpus": str(corpus),
            "seq_len": 32,
            "global_batch": 8,
            "steps": steps,
            "reserve_fraction": 0.3,
            "max_injected_fraction": 0.5,
            "training": {"learning_rate": 3e-3, "warmup_steps": 4, "checkpoints": checkpoints or [steps], "save_initial": False,
                         "log_every": 50, **training},
        },
        "leakage": {"scan_corpus": False},
        "experiments": [
            {
                "name": "fc",
                "kind": "forgetting",
                "items": {"generate": {}},
                "arms": arms,
                "params": {"replace_at": dict(replace_at), "batches": batches, "inloop_every": inloop_every},
            }
        ],
    }
