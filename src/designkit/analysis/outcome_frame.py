"""Build the long outcome frame every estimator reads from the plan items and run scores.

One row per item, checkpoint and outcome: `experiment, arm, dose, inserted, item_index,
step, outcome, value`, then `n_instances` (probe instances averaged into `value`), plus the item's
`stratum` where the plan's items have one (read by the `per_stratum` and `exposure` estimators).
Items come from `items.parquet`; scores from
`scores/step-*.parquet` (docs/formats.md), each outcome naming the probe and column that
hold it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from designkit.analysis.effects import LONG_FRAME_COLUMNS
from designkit.plan_types import ExperimentSpec

ITEM_COLUMNS = ("item_index", "arm", "dose", "inserted")
OPTIONAL_ITEM_COLUMNS = ("stratum",)
SCORE_COLUMNS = ("item_index", "experiment", "probe", "step")


def long_outcome_frame(
    items: pd.DataFrame, scores: pd.DataFrame, experiments: Sequence[ExperimentSpec], *, instances: bool = False
) -> pd.DataFrame:
    """Every declared outcome of every experiment as item-level rows.

    Boolean score columns (e.g. `correct`) become 0/1 values. Items without a score at a
    step are absent, not NaN.

    Probe instances (scores' `instance` column; absent: one per item) are aggregated to
    their item, the randomized unit: `value` is the mean of the item's instance outcomes
    (for a binary outcome, the item's proportion) and `n_instances` says how many entered
    it. The item, not the instance, is then the unit every estimator tests: instances of one
    item share its treatment and are not independent (a cluster-level analysis). With
    `instances=True` the rows are the instances themselves (an `instance` column, no
    aggregation), for estimators that model the clustering (`cluster_robust`).
    """
    for name, frame, needed in (("items", items, ITEM_COLUMNS), ("scores", scores, SCORE_COLUMNS)):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"expected {name} columns {list(needed)}, missing {missing}")
    optional = [c for c in OPTIONAL_ITEM_COLUMNS if c in items.columns]
    if "instance" not in scores.columns:
        scores = scores.assign(instance=0)
    arms = items[list(ITEM_COLUMNS) + optional]
    parts = []
    for spec in experiments:
        for outcome in spec.outcomes:
            rows = scores[(scores["experiment"] == spec.name) & (scores["probe"] == outcome.probe)]
            if rows.empty:
                continue
            if outcome.column not in rows.columns:
                raise ValueError(
                    f"experiment {spec.name!r} outcome {outcome.name!r}: expected column "
                    f"{outcome.column!r} in scores of probe {outcome.probe!r}"
                )
            part = pd.DataFrame({
                "experiment": spec.name,
                "item_index": rows["item_index"].to_numpy(),
                "instance": rows["instance"].to_numpy(),
                "step": rows["step"].to_numpy(),
                "outcome": outcome.name,
                "value": rows[outcome.column].astype(float).to_numpy(),
            })
            if outcome.minus_probe:
                # a within-instance contrast of two probes (e.g. own question vs an unrelated one)
                other = scores[(scores["experiment"] == spec.name) & (scores["probe"] == outcome.minus_probe)]
                subtrahend = pd.DataFrame({
                    "item_index": other["item_index"].to_numpy(),
                    "instance": other["instance"].to_numpy(),
                    "step": other["step"].to_numpy(),
                    "minus": other[outcome.column].astype(float).to_numpy(),
                })
                part = part.merge(subtrahend, on=["item_index", "instance", "step"], how="inner", validate="one_to_one")
                part = part.assign(value=part["value"] - part["minus"]).drop(columns="minus")
            if not instances:
                part = aggregate_instances(part)
            parts.append(part.merge(arms, on="item_index", how="left", validate="many_to_one"))
    extra = ["instance"] if instances else ["n_instances"]
    if not parts:
        return pd.DataFrame(columns=[*LONG_FRAME_COLUMNS, *extra])
    return pd.concat(parts, ignore_index=True)[[*LONG_FRAME_COLUMNS, *extra, *optional]]


def aggregate_instances(part: pd.DataFrame) -> pd.DataFrame:
    """One row per item and step: the mean of its finite instance values and their count
    (an item whose instances are all NaN keeps NaN, as a single NaN score would)."""
    if not part.duplicated(["item_index", "step"]).any():
        return part.drop(columns="instance").assign(n_instances=1)  # one instance per item: nothing to average
    grouped = part.groupby(["experiment", "item_index", "step", "outcome"], sort=False)["value"]
    out = grouped.agg(value="mean", n_instances="count").reset_index()
    out["n_instances"] = out["n_instances"].astype(int)
    return out
