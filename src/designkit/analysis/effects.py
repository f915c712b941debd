"""Two-sample comparisons of per-item outcomes, and the tidy `Effect` row every estimator returns.

Following Bordt & Pawelczyk (2025, "Train Once, Answer All"), payload items are randomized
into arms, so at any checkpoint a treated arm and the control arm are two independent
samples of items. The effect of inserting an item `dose` times is the difference of the two
arms' mean outcome: a difference in proportions for binary outcomes, a difference in means
for continuous ones.

Method choices (all computations come from statsmodels/scipy):

- binary: Newcombe's hybrid score interval for the difference (`method="newcomb"`) and the
  Miettinen-Nurminen score test (`method="score"`). Fagerland, Lydersen & Laake (2015)
  recommend both for small samples. The statsmodels score *interval* fails to converge at
  common boundary tables (e.g. 30/30 vs 29/30), the Newcombe interval does not. The two are
  not exact inverses of each other, so in well under 1% of tables, all at the
  significance boundary, the CI and the p-value disagree about alpha.
- continuous: Welch's t interval and test (no equal-variance assumption), or a BCa
  bootstrap interval with a studentized (Welch-t) permutation test, which stays valid
  for equal means under unequal variances (Janssen 1997).
- effect sizes: Cohen's h (`proportion_effectsize`) and Cohen's d (pooled SD), the units
  of the planner's power table.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    test_proportions_2indep,
)

from designkit.analysis.tidy import to_frame

BINARY_METHOD = "newcombe_ci+score_test"
WELCH_METHOD = "welch"
BOOTSTRAP_METHOD = "bca_bootstrap_ci+welch_t_permutation_test"
ContinuousMethod = Literal["welch", "bootstrap"]

VS_CONTROL = "vs_control"
"""`Effect.comparison` of a treated arm compared against the experiment's control arm."""

CONFIRMATORY = "confirmatory"
EXPLORATORY = "exploratory"

LONG_FRAME_COLUMNS: tuple[str, ...] = (
    "experiment", "arm", "dose", "inserted", "item_index", "step", "outcome", "value",
)


@dataclass(frozen=True)
class Comparison:
    """Two-sample comparison of treated vs control items; estimate = treated - control."""

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    n_treated: int
    n_control: int
    treated_mean: float
    control_mean: float
    effect_size: float
    effect_size_name: str
    """`cohen_h` (binary) or `cohen_d` (continuous)."""
    method: str
    alpha: float
    """The CI has confidence 1 - alpha."""
    note: str = ""
    """Why p or the CI is NaN (degenerate input), empty otherwise."""


@dataclass(frozen=True, kw_only=True)
class Effect:
    """A labelled comparison: one arm vs its reference arm, one outcome, one checkpoint."""

    experiment: str
    outcome: str
    outcome_type: str
    arm: str
    control_arm: str
    """Reference arm; the control arm, or the early-window arm for a window contrast."""
    dose: int
    step: int
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    p_adj: float = math.nan
    """Multiplicity-adjusted p within `family`; NaN until `multiple_testing.adjust`."""
    family: str = ""
    """`confirmatory` or `exploratory` multiple-testing family."""
    n_treated: int
    n_control: int
    treated_mean: float
    control_mean: float
    effect_size: float
    effect_size_name: str
    method: str
    alpha: float
    estimator: str = ""
    """Registered name of the estimator that produced the row."""
    comparison: str = VS_CONTROL
    primary: bool = False
    """The outcome is the experiment's primary outcome."""
    note: str = ""

    @classmethod
    def from_comparison(cls, result: Comparison, /, **labels: object) -> Effect:
        return cls(**dataclasses.asdict(result), **labels)  # type: ignore[arg-type]


def compare_binary(treated: np.ndarray, control: np.ndarray, alpha: float = 0.05) -> Comparison:
    """Difference in proportions treated - control, Newcombe CI, score-test p, Cohen's h.

    Inputs are 0/1 (or bool) arrays; NaNs are dropped. With fewer than 2 items in an arm,
    p and the CI are NaN. When both arms are all 0 (or all 1) the score test is undefined:
    p is NaN but the Newcombe CI is still reported, because it bounds the effect.
    """
    t, c = finite_values(treated), finite_values(control)
    check_binary(t, "treated")
    check_binary(c, "control")
    n_t, n_c = t.size, c.size
    count_t, count_c = int(t.sum()), int(c.sum())
    mean_t = count_t / n_t if n_t else math.nan
    mean_c = count_c / n_c if n_c else math.nan
    h = float(proportion_effectsize(mean_t, mean_c)) if n_t and n_c else math.nan
    result = dict(
        estimate=mean_t - mean_c, n_treated=n_t, n_control=n_c, treated_mean=mean_t,
        control_mean=mean_c, effect_size=h, effect_size_name="cohen_h", method=BINARY_METHOD,
        alpha=alpha,
    )
    if min(n_t, n_c) < 2:
        return Comparison(**result, ci_low=math.nan, ci_high=math.nan, p=math.nan,
                          note="fewer than 2 items in an arm")
    # statsmodels divides by zero for the ratio/odds ratio it also reports; we only use the diff.
    with np.errstate(divide="ignore", invalid="ignore"):
        ci_low, ci_high = confint_proportions_2indep(
            count_t, n_t, count_c, n_c, method="newcomb", compare="diff", alpha=alpha
        )
        if count_t + count_c in (0, n_t + n_c):
            p, note = math.nan, "no variation in either arm: score test undefined"
        else:
            p = test_proportions_2indep(count_t, n_t, count_c, n_c, method="score",
                                        compare="diff").pvalue
            note = ""
    return Comparison(**result, ci_low=float(ci_low), ci_high=float(ci_high), p=float(p), note=note)


def compare_continuous(
    treated: np.ndarray,
    control: np.ndarray,
    alpha: float = 0.05,
    method: ContinuousMethod = "welch",
    seed: int | None = 0,
    n_resamples: int = 9999,
) -> Comparison:
    """Difference in means treated - control with Welch or bootstrap inference, Cohen's d.

    `welch`: Welch t CI and p. `bootstrap`: BCa bootstrap CI (resampling within arms) and a
    two-sided permutation p of the Welch t statistic; `seed` and `n_resamples` apply only
    here. NaNs are dropped. With fewer than 2 items in an arm, or no variation within
    either arm, p and the CI are NaN and `note` says why.
    """
    if method not in ("welch", "bootstrap"):
        raise ValueError(f"expected method 'welch' or 'bootstrap', got {method!r}")
    t, c = finite_values(treated), finite_values(control)
    n_t, n_c = t.size, c.size
    mean_t = float(t.mean()) if n_t else math.nan
    mean_c = float(c.mean()) if n_c else math.nan
    result = dict(
        estimate=mean_t - mean_c, n_treated=n_t, n_control=n_c, treated_mean=mean_t,
        control_mean=mean_c, effect_size=cohen_d(t, c), effect_size_name="cohen_d",
        method=WELCH_METHOD if method == "welch" else BOOTSTRAP_METHOD, alpha=alpha,
    )
    nan_inference = dict(ci_low=math.nan, ci_high=math.nan, p=math.nan)
    if min(n_t, n_c) < 2:
        return Comparison(**result, **nan_inference, note="fewer than 2 items in an arm")
    if np.ptp(t) == 0 and np.ptp(c) == 0:
        return Comparison(**result, **nan_inference, note="no variation within either arm")
    if method == "welch":
        test = stats.ttest_ind(t, c, equal_var=False)
        ci = test.confidence_interval(confidence_level=1 - alpha)
        return Comparison(**result, ci_low=float(ci.low), ci_high=float(ci.high),
                          p=float(test.pvalue))
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        boot = stats.bootstrap(
            (t, c), _mean_difference, n_resamples=n_resamples, vectorized=True, paired=False,
            confidence_level=1 - alpha, method="BCa", rng=rng,
        )
        perm = stats.permutation_test(
            (t, c), _welch_t, permutation_type="independent", n_resamples=n_resamples,
            vectorized=True, alternative="two-sided", rng=rng,
        )
    degenerate = [str(w.message) for w in caught if "degenerate" in str(w.message).lower()]
    return Comparison(
        **result, ci_low=float(boot.confidence_interval.low),
        ci_high=float(boot.confidence_interval.high), p=float(perm.pvalue),
        note=degenerate[0] if degenerate else "",
    )


def cohen_d(treated: np.ndarray, control: np.ndarray) -> float:
    """Mean difference over the pooled SD (ddof=1): the effect size `TTestIndPower` uses."""
    t, c = finite_values(treated), finite_values(control)
    n_t, n_c = t.size, c.size
    if n_t < 2 or n_c < 2:
        return math.nan
    pooled_var = ((n_t - 1) * t.var(ddof=1) + (n_c - 1) * c.var(ddof=1)) / (n_t + n_c - 2)
    if pooled_var == 0:
        return math.nan
    return float((t.mean() - c.mean()) / math.sqrt(pooled_var))


def effects_frame(effects: Sequence[Effect]) -> pd.DataFrame:
    """The tidy frame of `Effect` rows (all columns present even when empty)."""
    return to_frame(effects, Effect)


def labelled_seed(seed: int, *labels: object) -> int:
    """A seed determined by `seed` and the labels alone (stable across processes)."""
    key = zlib.crc32("\x1f".join(map(str, labels)).encode())
    return int(np.random.SeedSequence([seed, key]).generate_state(1)[0])


def finite_values(x: np.ndarray) -> np.ndarray:
    """`x` as a flat float array without NaNs (unscored items)."""
    a = np.asarray(x, dtype=float).ravel()
    return a[~np.isnan(a)]


def check_binary(x: np.ndarray, name: str) -> None:
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"expected binary {name} values in {{0, 1}}, got {np.unique(x)[:5]!r}")


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _welch_t(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.ttest_ind(x, y, axis=axis, equal_var=False).statistic
