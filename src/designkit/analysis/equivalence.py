"""Equivalence (TOST) tests: is an effect inside a declared margin?

A non-significant difference is not evidence of no effect. For interference (does
experiment j's data move experiment i's outcome?) we want to *claim* a negligible effect,
so we test H0: |effect| >= margin with two one-sided tests (Schuirmann 1987). Equivalence
is declared when both one-sided tests reject at alpha, which is the same as the
(1 - 2 alpha) CI lying inside the margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, tost_proportions_2indep
from statsmodels.stats.weightstats import ttost_ind

from designkit.analysis.effects import check_binary, finite_values


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
