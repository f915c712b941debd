"""Minimal detectable effects at plan time (statsmodels.stats.power).

The analysis reuses ``minimal_detectable_effect`` to show the achieved MDE next to the
planned one, so the two are computed the same way.
"""

from __future__ import annotations

import math

import numpy as np
from statsmodels.stats.power import NormalIndPower, TTestIndPower


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



def power_table(rows: list[dict], alpha: float, power: float) -> list[dict]:
    """``rows`` carry experiment, arm, outcome, outcome_type, n_treated, n_control, baseline."""
    table = []
    for row in rows:
        size, name, natural = minimal_detectable_effect(
            row["n_treated"], row["n_control"], row["outcome_type"], alpha, power, row.get("baseline")
        )
        table.append({**row, "alpha": alpha, "power": power, "mde_effect_size": size, "effect_size_name": name, "mde_natural": natural})
    return table
