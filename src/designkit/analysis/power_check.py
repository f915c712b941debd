"""Minimal detectable effects: planned (from the design) and achieved (from the realized n).

The planner (`designkit.planning.power`) imports `minimal_detectable_effect`, so the
function is pure and uses numpy and statsmodels only. Effect sizes are Cohen's h for
binary outcomes (`NormalIndPower`, the arcsine z-test) and Cohen's d for continuous ones
(`TTestIndPower`); both tests are two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from designkit.plan_types import ExperimentSpec
from designkit.analysis.tidy import to_frame
from designkit.planning.power import minimal_detectable_effect


@dataclass(frozen=True)
class AchievedMde:
    """The MDE a treated-vs-control comparison had, given the items actually scored."""

    experiment: str
    outcome: str
    outcome_type: str
    arm: str
    step: int
    n_treated: int
    n_control: int
    alpha: float
    power: float
    mde_effect_size: float
    effect_size_name: str
    baseline: float
    """Observed control mean (binary: the control rate the natural MDE starts from)."""
    mde_natural: float
    """Binary: detectable difference in proportions from `baseline`; NaN for continuous."""
    observed_effect_size: float


def achieved_mde_table(
    effects: pd.DataFrame,
    *,
    experiments: Sequence[ExperimentSpec] = (),
    planned_power: pd.DataFrame | None = None,
    power: float = 0.8,
) -> pd.DataFrame:
    """Achieved MDE of every treated-vs-control effect at its experiment's last step.

    `effects` is the effects table. `experiments` supplies each outcome's expected sign
    (the direction of the natural-units MDE; +1 if absent). `planned_power` is the plan's
    power table (`plan.json` `power` rows); when given, its `n_treated`, `n_control`,
    `mde_effect_size` and `mde_natural` are joined as `planned_*` columns.
    """
    signs = {(s.name, o.name): o.expected_sign for s in experiments for o in s.outcomes}
    vs_control = effects[effects["comparison"] == "vs_control"]
    final = vs_control[vs_control["step"] == vs_control.groupby("experiment")["step"].transform("max")]
    rows = []
    for r in final.itertuples(index=False):
        baseline = float(r.control_mean)
        mde, name, natural = minimal_detectable_effect(
            int(r.n_treated), int(r.n_control), r.outcome_type, alpha=float(r.alpha),
            power=power, baseline=baseline if r.outcome_type == "binary" and not math.isnan(baseline) else None,
            direction=signs.get((r.experiment, r.outcome), 1),
        )
        rows.append(AchievedMde(
            experiment=r.experiment, outcome=r.outcome, outcome_type=r.outcome_type, arm=r.arm,
            step=int(r.step), n_treated=int(r.n_treated), n_control=int(r.n_control),
            alpha=float(r.alpha), power=power, mde_effect_size=mde, effect_size_name=name,
            baseline=baseline, mde_natural=math.nan if natural is None else natural,
            observed_effect_size=float(r.effect_size),
        ))
    table = to_frame(rows, AchievedMde)
    if planned_power is None or planned_power.empty:
        return table
    keys = ["experiment", "arm", "outcome"]
    planned = planned_power[keys + ["n_treated", "n_control", "mde_effect_size", "mde_natural"]]
    planned = planned.rename(columns={c: f"planned_{c}" for c in planned.columns if c not in keys})
    return table.merge(planned, on=keys, how="left")
