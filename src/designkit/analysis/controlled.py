"""What a run-time controller did (KA, the paper's Algorithm 1): trajectories, doses, tokens used.

For every experiment with a ``controller`` the report shows each treated item's in-loop probe
value over training against the controller's target (``scores/inloop.parquet`` and
``controller.csv``), with the control items alongside, and a table of the tokens the
controller's fills took: the share of the run's tokens it used next to the share the plan
reserved. The treated-versus-control test of the final probe value with its CI is the
experiment's ordinary primary outcome, estimated at the checkpoints like any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from designkit.analysis.estimator import ReportSection
from designkit.controllers import ControllerSpec
from designkit.plan_types import ExperimentSpec


def controller_usage(specs: Sequence[ExperimentSpec], items: pd.DataFrame, applied: pd.DataFrame, reserved: pd.DataFrame,
                     log: pd.DataFrame | None, total_tokens: int) -> pd.DataFrame:  # fmt: skip
    """One row per controlled experiment: decisions, payloads asked for and filled, tokens used and reserved."""
    rows = []
    for spec in specs:
        if not spec.controller:
            continue
        mine = log[log["experiment"] == spec.name] if log is not None else pd.DataFrame(columns=["interval", "requested", "filled"])
        slots = reserved[(reserved["experiment"] == spec.name) & (reserved["interval"] >= 0)] if "interval" in reserved else reserved.iloc[:0]
        ids = set(items.loc[items["experiment"] == spec.name, "item_index"].astype(int))
        # the experiment plans no insertion of its own: each of its applied inserts is a fill
        fills = applied[(applied["edit"] == "insert") & applied["item_index"].astype(int).isin(ids)]
        used = int(fills["n_tokens"].sum())
        rows.append({
            "experiment": spec.name,
            "intervals": int(mine["interval"].nunique()),
            "payloads_requested": int(mine["requested"].sum()),
            "payloads_filled": int(mine["filled"].sum()),
            "tokens_used": used,
            "share_of_run": used / total_tokens if total_tokens else math.nan,
            "tokens_reserved": int(slots["n_tokens"].sum()),
            "reserved_share_of_run": int(slots["n_tokens"].sum()) / total_tokens if total_tokens else math.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)


def usage_section(usage: pd.DataFrame) -> list[ReportSection]:
    if usage.empty:
        return []
    return [ReportSection(
        title="Run-time dose control: tokens used",
        intro=("Payloads the controller asked for and inserted in the slots the plan reserved, and the share of the "
               "run's tokens they took, next to the share the plan reserved (the budget counts the full reservation)."),
        table=usage,
    )]  # fmt: skip


def trajectory_figures(specs: Sequence[ExperimentSpec], items: pd.DataFrame, inloop: pd.DataFrame | None, log: pd.DataFrame | None) -> list:
    """Per controlled experiment, each item's in-loop probe value over training against the target."""
    from designkit.analysis.figures import FigureFile, new_figure, png_bytes

    out = []
    for spec in specs:
        if not spec.controller or inloop is None:
            continue
        control = ControllerSpec.from_json(spec.controller)
        rows = inloop[(inloop["experiment"] == spec.name) & (inloop["probe"] == control.probe)]
        if rows.empty:
            continue
        probability = bool({"probability": True, **control.params}["probability"])
        arm = items.set_index("item_index")["arm"]
        fig = new_figure(7.0, 4.2)
        ax = fig.add_subplot(1, 1, 1)
        for item_index, series in rows.sort_values("step").groupby("item_index"):
            treated = arm.get(int(item_index)) != spec.control_arm
            values = series[control.column].astype(float).to_numpy()
            values = np.exp(values) if probability else values
            ax.plot(series["step"], values, color="#1f77b4" if treated else "#b0b0b0", lw=1.0 if treated else 0.7, alpha=0.8)
        if log is not None:
            target = log[log["experiment"] == spec.name].drop_duplicates("step").sort_values("step")
            target = target[target["target"] > 0]  # a log axis: the target starts at 0
            ax.plot(target["step"], target["target"], color="#c0392b", ls="--", lw=1.6, label="controller target")
        ax.plot([], [], color="#1f77b4", label="treated (dose controlled)")
        ax.plot([], [], color="#b0b0b0", label="control (never inserted)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"exp({control.column})" if probability else control.column)
        ax.legend(loc="lower right", fontsize=8)
        fig.subplots_adjust(left=0.12, right=0.97, top=0.95, bottom=0.13)
        out.append(FigureFile(
            f"controller_trajectories_{spec.name}.png", f"{spec.name}: probe trajectories against the controller's target",
            f"In-loop {control.probe} probe ({'exp of ' if probability else ''}{control.column}) of every item, every "
            f"{control.every} steps; dashed: the target the controller steered the treated items toward.",
            png_bytes(fig), spec.name,
        ))  # fmt: skip
    return out
