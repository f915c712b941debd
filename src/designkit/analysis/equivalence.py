"""Equivalence (TOST) tests: is an effect inside a declared margin?

A non-significant difference is not evidence of no effect. For interference (does
experiment j's data move experiment i's outcome?) we want to *claim* a negligible effect,
so we test H0: |effect| >= margin with two one-sided tests (Schuirmann 1987). Equivalence
is declared when both one-sided tests reject at alpha, which is the same as the
(1 - 2 alpha) CI lying inside the margin.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, tost_proportions_2indep
from statsmodels.stats.weightstats import ttost_ind

from designkit.analysis.effects import check_binary, finite_values
from designkit.analysis.tidy import to_frame
from designkit.plan_types import ExperimentSpec
from designkit.planning.power import proportion_difference_from_h


@dataclass(frozen=True)
class Equivalence:
    """TOST of treated - control against the margin [margin_low, margin_high]."""

    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    """1 - 2 alpha: the CI whose inclusion in the margin equals the TOST decision."""
    p_tost: float
    """The larger of the two one-sided p-values."""
    equivalent: bool
    margin_low: float
    margin_high: float
    alpha: float
    n_treated: int
    n_control: int
    method: str
    note: str = ""


def tost_equivalence(
    treated: np.ndarray,
    control: np.ndarray,
    outcome_type: str,
    margin: float | tuple[float, float],
    alpha: float = 0.05,
) -> Equivalence:
    """TOST of treated - control; `margin` is m (for [-m, m]) or (low, high).

    Binary: Miettinen-Nurminen score TOST (`tost_proportions_2indep`) with a Newcombe
    interval. Continuous: Welch TOST (`ttost_ind(usevar="unequal")`) with a Welch interval.
    NaNs are dropped; with fewer than 2 items in an arm (or no variation in a continuous
    outcome) p is NaN and `equivalent` is False.
    """
    low, high = (-abs(margin), abs(margin)) if np.isscalar(margin) else map(float, margin)  # type: ignore[arg-type]
    if not low < high:
        raise ValueError(f"expected margin low < high, got ({low}, {high})")
    t, c = finite_values(treated), finite_values(control)
    n_t, n_c = t.size, c.size
    base = dict(margin_low=float(low), margin_high=float(high), alpha=alpha, n_treated=n_t,
                n_control=n_c, ci_level=1 - 2 * alpha)
    estimate = float(t.mean() - c.mean()) if n_t and n_c else math.nan
    if outcome_type == "binary":
        method = "score_tost+newcombe_ci"
        if min(n_t, n_c) < 2:
            return _undefined(base, estimate, method, "fewer than 2 items in an arm")
        check_binary(t, "treated")
        check_binary(c, "control")
        counts = (int(t.sum()), n_t, int(c.sum()), n_c)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = float(tost_proportions_2indep(*counts, low, high, method="score").pvalue)
            ci_low, ci_high = confint_proportions_2indep(*counts, method="newcomb", alpha=2 * alpha)
    elif outcome_type == "continuous":
        method = "welch_tost"
        if min(n_t, n_c) < 2:
            return _undefined(base, estimate, method, "fewer than 2 items in an arm")
        if np.ptp(t) == 0 and np.ptp(c) == 0:
            return _undefined(base, estimate, method, "no variation within either arm")
        p = float(ttost_ind(t, c, low, high, usevar="unequal")[0])
        ci = stats.ttest_ind(t, c, equal_var=False).confidence_interval(1 - 2 * alpha)
        ci_low, ci_high = ci.low, ci.high
    else:
        raise ValueError(f"expected outcome_type 'binary' or 'continuous', got {outcome_type!r}")
    return Equivalence(**base, estimate=estimate, ci_low=float(ci_low), ci_high=float(ci_high),
                       p_tost=p, equivalent=bool(p < alpha), method=method)


def _undefined(base: dict, estimate: float, method: str, note: str) -> Equivalence:
    return Equivalence(**base, estimate=estimate, ci_low=math.nan, ci_high=math.nan,
                       p_tost=math.nan, equivalent=False, method=method, note=note)


@dataclass(frozen=True)
class EquivalenceResult:
    """A placebo arm's TOST against its control at the final step, labelled."""

    experiment: str
    outcome: str
    outcome_type: str
    arm: str
    control_arm: str
    step: int
    primary: bool
    margin_effect_size: float
    """The design's margin, in `effect_size_name` units."""
    effect_size_name: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_tost: float
    equivalent: bool
    margin_low: float
    """The margin in outcome units (difference treated - control)."""
    margin_high: float
    alpha: float
    n_treated: int
    n_control: int
    method: str
    note: str = ""


def equivalence_table(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], alpha: float, margin: float | None) -> pd.DataFrame:
    """TOST of every treated arm of every placebo experiment, each outcome, at the final step.

    The design's `margin` is in effect-size units (Cohen's d or h, docs/formats.md); it is
    turned into outcome units with the pooled SD of the two arms (d) or around the control
    rate (h) at the final step. No margin: an empty table.
    """
    rows: list[EquivalenceResult] = []
    if margin is None:
        return to_frame(rows, EquivalenceResult)
    for spec in specs:
        if not spec.placebo or spec.control_arm is None:
            continue
        of_experiment = frame[frame["experiment"] == spec.name]
        if of_experiment.empty:
            continue
        step = int(of_experiment["step"].max())
        at_step = of_experiment[of_experiment["step"] == step]
        for outcome in spec.outcomes:
            values = at_step[at_step["outcome"] == outcome.name]
            by_arm = {str(a): g["value"].to_numpy(float) for a, g in values.groupby("arm")}
            control = finite_values(by_arm.get(spec.control_arm, np.empty(0)))
            for arm in sorted(a.name for a in spec.arms if a.name != spec.control_arm):
                treated = finite_values(by_arm.get(arm, np.empty(0)))
                low, high, name, note = _natural_margin(margin, treated, control, outcome.type)
                labels = dict(experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                              control_arm=spec.control_arm, step=step, primary=outcome.primary,
                              margin_effect_size=float(margin), effect_size_name=name)
                if note:
                    rows.append(EquivalenceResult(**labels, estimate=math.nan, ci_low=math.nan, ci_high=math.nan,
                                                  ci_level=1 - 2 * alpha, p_tost=math.nan, equivalent=False,
                                                  margin_low=low, margin_high=high, alpha=alpha,
                                                  n_treated=treated.size, n_control=control.size, method="", note=note))
                    continue
                result: Equivalence = tost_equivalence(treated, control, outcome.type, (low, high), alpha=alpha)
                rows.append(EquivalenceResult(**labels, **dataclasses.asdict(result)))
    return to_frame(rows, EquivalenceResult)


def _natural_margin(margin: float, treated: np.ndarray, control: np.ndarray, outcome_type: str) -> tuple[float, float, str, str]:
    """(low, high) in outcome units for an effect-size margin, the effect size's name, and a note."""
    if min(treated.size, control.size) < 2:
        return math.nan, math.nan, "cohen_h" if outcome_type == "binary" else "cohen_d", "fewer than 2 items in an arm"
    if outcome_type == "binary":
        rate = float(control.mean())
        high = proportion_difference_from_h(margin, rate, +1)
        low = proportion_difference_from_h(margin, rate, -1)
        # At a control rate of 0 or 1 one side has no room; mirror the other side.
        if math.isnan(high) and math.isnan(low):
            return math.nan, math.nan, "cohen_h", "margin does not fit in [0, 1] around the control rate"
        high = -low if math.isnan(high) else high
        low = -high if math.isnan(low) else low
        return low, high, "cohen_h", ""
    n_t, n_c = treated.size, control.size
    pooled = math.sqrt(((n_t - 1) * treated.var(ddof=1) + (n_c - 1) * control.var(ddof=1)) / (n_t + n_c - 2))
    if not pooled > 0:
        return math.nan, math.nan, "cohen_d", "no variation within either arm: a margin in SD units is undefined"
    return -margin * pooled, margin * pooled, "cohen_d", ""
