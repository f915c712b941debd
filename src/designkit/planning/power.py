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
) -> tuple[float, str, float | None]:
    """``(effect size, its name, effect in outcome units or None)`` for a two-sided test.

    Binary outcomes use Cohen's h with the normal approximation; with a known control rate
    ``baseline`` the h is also converted to a difference in proportions. Continuous
    outcomes use Cohen's d with the two-sample t-test.
    """
    if n_treated < 2 or n_control < 2:
        return math.nan, "cohen_h" if outcome_type == "binary" else "cohen_d", None
    ratio = n_control / n_treated
    if outcome_type == "binary":
        h = float(NormalIndPower().solve_power(effect_size=None, nobs1=n_treated, alpha=alpha, power=power, ratio=ratio))
        natural = None
        if baseline is not None:
            # invert h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0)) for the treated rate p1
            angle = min(math.asin(math.sqrt(baseline)) + h / 2, math.pi / 2)
            natural = float(np.sin(angle) ** 2 - baseline)
        return h, "cohen_h", natural
    d = float(TTestIndPower().solve_power(effect_size=None, nobs1=n_treated, alpha=alpha, power=power, ratio=ratio))
    return d, "cohen_d", None


def power_table(rows: list[dict], alpha: float, power: float) -> list[dict]:
    """``rows`` carry experiment, arm, outcome, outcome_type, n_treated, n_control, baseline."""
    table = []
    for row in rows:
        size, name, natural = minimal_detectable_effect(
            row["n_treated"], row["n_control"], row["outcome_type"], alpha, power, row.get("baseline")
        )
        table.append({**row, "alpha": alpha, "power": power, "mde_effect_size": size, "effect_size_name": name, "mde_natural": natural})
    return table
