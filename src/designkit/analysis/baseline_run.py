"""A reference run for the "negligible overhead" question: same seed, same data, no experiments.

Bordt & Pawelczyk (2025, *Train Once, Answer All*) compare the training loss of the run
with all ten experiments with a run that has none. Here the reference is any run dir whose
plan reads the same base stream (seed, geometry, corpus fingerprint), trains the same model
with the same optimizer settings, and edits nothing (no injected, reserved, removed or
noised tokens: a placebo-only design qualifies). Everything else is refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from designkit.errors import InputError
from designkit.runfile import RunDir

GEOMETRY_KEYS = ("seq_len", "global_batch", "steps")
# settings that only say when to save or log: a reference run may differ in them
UNCOMPARED_TRAINING = ("checkpoint_steps", "log_every")


def same_run_settings(plan_meta: dict[str, Any], reference_meta: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, analyzed run's value, reference's value) of every setting that differs."""
    pairs = [("seed", plan_meta["seed"], reference_meta["seed"])]
    pairs += [(f"geometry.{k}", plan_meta["geometry"][k], reference_meta["geometry"][k]) for k in GEOMETRY_KEYS]
    pairs.append(("corpus.fingerprint", plan_meta["corpus"]["fingerprint"], reference_meta["corpus"]["fingerprint"]))
    pairs.append(("model.config", plan_meta["model"]["config"], reference_meta["model"]["config"]))
    mine, theirs = plan_meta["training"], reference_meta["training"]
    pairs += [(f"training.{k}", mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs)) if k not in UNCOMPARED_TRAINING]
    return [(key, a, b) for key, a, b in pairs if a != b]


def load_reference_metrics(reference_dir: str | Path, plan_meta: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference run's metrics.csv and identity; InputError unless it is this run without experiments."""
    run = RunDir.open(reference_dir)
    plan = run.plan()
    meta = plan.meta
    plan_file = plan.path / "plan.json"
    differing = same_run_settings(plan_meta, meta)
    if differing:
        key, mine, theirs = differing[0]
        raise InputError(plan_file, key, f"expected the analyzed run's {key} in the reference run (--baseline-run), "
                                         f"got {_short(theirs)} against {_short(mine)}")
    budget = meta["budget"]
    if budget["injected_tokens"] or budget.get("edited_sequences", 0):
        raise InputError(plan_file, "budget", "expected a reference run with no experiments (nothing injected, reserved, "
                                              f"removed or noised), it edits {budget['injected_tokens']:,} tokens and "
                                              f"{budget.get('edited_sequences', 0):,} sequences")
    metrics = run.metrics()
    if metrics.empty:
        raise InputError(run.path / "metrics.csv", None, "expected the reference run's training metrics (train it first)")
    identity = {"run_path": str(run.path.resolve()), "plan_name": meta["name"], "plan_hash": plan.hash}
    return metrics, identity


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
