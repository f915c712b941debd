"""The report's opening screen: every experiment's primary effect, verdict and share of the run,
and the run's training loss beside a reference run without experiments.

This answers the two questions of Bordt & Pawelczyk (2025, *Train Once, Answer All*) at a
glance: did each experiment find its effect, and did running them all cost the base
training anything ("negligible overhead")? Everything is read from ``RunResults``; nothing
is re-estimated.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from designkit.analysis.results import RunResults

LAST_SHARE = 0.1
"""The loss comparison averages the last 10% of logged steps, as well as the last row: a
single logged loss is one noisy batch window."""


def overview_frame(results: RunResults) -> pd.DataFrame:
    """One row per experiment: the primary outcome's effect in its largest-dose treated arm
    (the arm a design makes large), its CI, adjusted p, the experiment's verdict, and the share
    of the run's tokens (and sequences) the experiment edits; then a row for all of them."""
    budget = pd.DataFrame(results.budget.get("rows") or [])
    verdicts = results.verdicts
    rows = []
    for info in results.experiments:
        name = info["name"]
        mine = verdicts[verdicts["experiment"] == name] if len(verdicts) else verdicts
        shown = mine.sort_values(["dose", "arm"], ascending=[False, True]).iloc[0] if len(mine) else None
        spent = budget[budget["experiment"] == name] if len(budget) else budget
        rows.append({
            "experiment": name + (" (placebo)" if info["placebo"] else ""),
            "kind": info["kind"],
            "outcome": info.get("primary_outcome") or "–",
            "arm": f"{shown['arm']} (dose {int(shown['dose'])})" if shown is not None else "–",
            "outcome_type": shown["outcome_type"] if shown is not None else "",
            "estimate": float(shown["estimate"]) if shown is not None else math.nan,
            "ci_low": float(shown["ci_low"]) if shown is not None else math.nan,
            "ci_high": float(shown["ci_high"]) if shown is not None else math.nan,
            "p_adj": float(shown["p_adj"]) if shown is not None else math.nan,
            "verdict": info["verdict"],
            "share_of_run": float(spent["share_of_run"].sum()) if len(spent) else 0.0,
            "sequence_share": float(spent["edited_sequence_share"].sum()) if len(spent) and "edited_sequence_share" in spent else 0.0,
        })
    rows.append({
        "experiment": "all experiments", "kind": "", "outcome": "", "arm": "", "outcome_type": "",
        "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_adj": math.nan,
        "verdict": f"{sum(1 for i in results.experiments if i['red_flag'])} red flag(s)",
        "share_of_run": float(results.budget.get("injected_fraction", 0.0)),
        "sequence_share": float(results.budget.get("edited_sequence_fraction", 0.0)),
    })
    return pd.DataFrame(rows)


def _tail_mean(metrics: pd.DataFrame) -> float:
    losses = metrics.sort_values("step")["loss"].to_numpy(dtype=float)
    if not len(losses):
        return math.nan
    return float(np.mean(losses[-max(1, int(math.ceil(LAST_SHARE * len(losses)))):]))


def loss_comparison(results: RunResults) -> pd.DataFrame:
    """The run's training loss next to the reference run's: the last logged loss, the mean of
    the last 10% of logged steps, and the mean over the steps both logged. Empty without a reference."""
    if results.baseline_metrics is None:
        return pd.DataFrame()
    run, ref = results.metrics, results.baseline_metrics
    both = run[["step", "loss"]].merge(ref[["step", "loss"]], on="step", suffixes=("_run", "_ref"))
    measures = [
        ("last logged loss", float(run.sort_values("step")["loss"].iloc[-1]), float(ref.sort_values("step")["loss"].iloc[-1])),
        (f"mean loss, last {LAST_SHARE:.0%} of logged steps", _tail_mean(run), _tail_mean(ref)),
        (f"mean loss over the {len(both)} steps both logged", float(both["loss_run"].mean()) if len(both) else math.nan,
         float(both["loss_ref"].mean()) if len(both) else math.nan),
    ]
    frame = pd.DataFrame(measures, columns=["measure", "with_experiments", "without_experiments"])
    frame["difference"] = frame["with_experiments"] - frame["without_experiments"]
    frame["relative"] = frame["difference"] / frame["without_experiments"]
    return frame
