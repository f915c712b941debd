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

import numpy as np
import pandas as pd
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from designkit.analysis.experiment_spec import ExperimentSpec
from designkit.analysis.tidy import to_frame


def minimal_detectable_effect(
    n_treated: int,
    n_control: int,
    outcome_type: str,
    alpha: float = 0.05,
    power: float = 0.8,
    baseline: float | None = None,
    direction: int = 1,
) -> tuple[float, str, float | None]:
    """Smallest effect a two-sided test detects with probability `power`.

    Returns (effect size, "cohen_h" | "cohen_d", natural). `natural` is the difference in
    proportions (treated - control, in outcome units: multiply by 100 for percentage
    points) for a binary outcome with a `baseline` control rate, moving in `direction`
    (+1 up, -1 down); NaN if no change of that size fits in [0, 1] that way, None for
    continuous outcomes or without a baseline. With fewer than 2 items in an arm the
    effect size is NaN.
    """
    if outcome_type == "binary":
        analysis, name = NormalIndPower(), "cohen_h"
    elif outcome_type == "continuous":
        analysis, name = TTestIndPower(), "cohen_d"
    else:
        raise ValueError(f"expected outcome_type 'binary' or 'continuous', got {outcome_type!r}")
    if min(n_treated, n_control) < 2:
        effect_size = math.nan
    else:
        effect_size = float(np.squeeze(analysis.solve_power(
            effect_size=None, nobs1=n_treated, alpha=alpha, power=power,
            ratio=n_control / n_treated, alternative="two-sided",
        )))
    natural = None
    if outcome_type == "binary" and baseline is not None:
        natural = proportion_difference_from_h(effect_size, baseline, direction)
    return effect_size, name, natural


def proportion_difference_from_h(h: float, baseline: float, direction: int = 1) -> float:
    """p1 - baseline for the p1 at Cohen's h distance from `baseline` in `direction`.

    Inverts h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0)) (`proportion_effectsize`).
    """
    if not 0.0 <= baseline <= 1.0:
        raise ValueError(f"expected a baseline rate in [0, 1], got {baseline!r}")
    if direction not in (1, -1):
        raise ValueError(f"expected direction +1 or -1, got {direction!r}")
    phi = 2.0 * math.asin(math.sqrt(baseline)) + direction * h
    if math.isnan(phi) or not 0.0 <= phi <= math.pi:
        return math.nan
    return math.sin(phi / 2.0) ** 2 - baseline


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
