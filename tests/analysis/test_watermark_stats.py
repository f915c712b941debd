"""The watermark estimators meet hand-computed answers and keep their error rates by simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from designkit.analysis import AnalysisOptions, effects_table
from designkit.analysis.watermark_stats import (
    FPR,
    THRESHOLD,
    WatermarkCalibration,
    detection_share,
    item_p_values,
    mean_shift,
    tpr_at_fpr,
)
from designkit.kinds.watermark import Watermark, WatermarkParams
from designkit.plan_types import ArmSpec, ExperimentSpec

from .frames import long_frame

SIMULATIONS = 400


def _binomial_band(rate: float, n: int, z: float = 3.0) -> tuple[float, float]:
    half = z * math.sqrt(rate * (1 - rate) / n)
    return rate - half, rate + half


# --------------------------------------------------------------------------- known answers


def test_item_p_is_the_lower_normal_tail():
    np.testing.assert_allclose(item_p_values([THRESHOLD, 0.0, 3.0]), [0.01, 0.5, stats.norm.cdf(3.0)])
    assert THRESHOLD == pytest.approx(-2.3263478740408408)


def test_mean_shift_matches_the_hand_computed_t_test():
    # x = (-1, -2, -3): mean -2, s = 1, t = -2 sqrt(3) on 2 df, whose cdf is 1/2 + t / (2 sqrt(t^2 + 2))
    mu, low, high, p = mean_shift(np.array([-1.0, -2.0, -3.0, np.nan]), alpha=0.05)
    t = -2 * math.sqrt(3)
    assert mu == -2.0
    assert p == pytest.approx(0.5 + t / (2 * math.sqrt(t * t + 2)))  # 0.03709
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} s / sqrt(n)
    assert (low, high) == (pytest.approx(-2 - half), pytest.approx(-2 + half))


def test_detection_share_counts_items_below_alpha_and_tests_against_alpha():
    share, low, high, p, k = detection_share(np.array([-3.0, -2.0, 0.0, 1.0]), alpha=0.05)
    # Phi(-3) = 0.0013 and Phi(-2) = 0.023 are detected; P(K >= 2 | n = 4, 0.05) = 1 - 0.95^4 - 4 (0.05) 0.95^3
    assert (k, share) == (2, 0.5)
    assert p == pytest.approx(1 - 0.95**4 - 4 * 0.05 * 0.95**3)
    assert low < 0.5 < high


def test_tpr_at_one_percent_fpr_counts_items_below_the_normal_one_percent_quantile():
    tpr, low, high, p = tpr_at_fpr(np.array([-3.0, -2.4, -2.2, 0.0]), alpha=0.05, seed=1)
    assert tpr == 0.5  # -3 and -2.4 are below -2.326, -2.2 is not
    assert p == pytest.approx(1 - 0.99**4 - 4 * 0.01 * 0.99**3)
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert tpr_at_fpr(np.zeros(10)) == (0.0, 0.0, 0.0, 1.0)


def _experiment() -> ExperimentSpec:
    kind = Watermark(WatermarkParams())
    return ExperimentSpec(name="wm", control_arm="control", kind="watermark",
                          arms=(ArmSpec("control", 0, 0.5), ArmSpec("x8", 8, 0.5)), outcomes=tuple(kind.outcomes([])))


def _frame(control: np.ndarray, treated: np.ndarray) -> pd.DataFrame:
    names = [o.name for o in _experiment().outcomes]
    return long_frame("wm", {"control": (0, False), "x8": (8, True)},
                      {name: {"control": control[None], "x8": treated[None]} for name in names}, steps=(10,))


def test_the_kinds_outcomes_run_through_their_estimators_and_only_the_primary_is_confirmatory():
    rng = np.random.default_rng(0)
    table = effects_table(_frame(rng.standard_normal(200), rng.normal(-1.0, 1.0, 200)), [_experiment()])
    by = {(r.outcome, r.arm): r for r in table.itertuples()}
    assert set(table["estimator"]) == {"watermark_shift", "watermark_item_p", "watermark_tpr", "watermark_calibration"}
    assert by["mean_shift", "x8"].family == "confirmatory" and by["mean_shift", "x8"].p < 1e-12
    assert (table["family"] == "confirmatory").sum() == 1
    assert by["mean_shift", "x8"].ci_low < -1.0 + 0.3 and by["mean_shift", "x8"].ci_high > -1.0 - 0.3
    assert ("calibration", "x8") not in by and by["calibration", "control"].note == ""
    # true TPR at 1% FPR for N(-1, 1): Phi(-2.326 + 1)
    tpr = by["tpr_at_1pct_fpr", "x8"]
    assert tpr.ci_low < stats.norm.cdf(THRESHOLD + 1.0) < tpr.ci_high


def test_miscalibrated_control_statistics_are_flagged_loudly():
    rng = np.random.default_rng(1)
    table = effects_table(_frame(rng.normal(0.0, 3.0, 200), rng.standard_normal(200)), [_experiment()])
    calibration = table[table["estimator"] == "watermark_calibration"]
    assert calibration["note"].iloc[0].startswith("MISCALIBRATED")
    flags = WatermarkCalibration().red_flags(calibration, AnalysisOptions())
    assert len(flags) == 1 and "MISCALIBRATED" in flags[0] and flags[0].startswith("wm:")
    calm = effects_table(_frame(rng.standard_normal(200), rng.standard_normal(200)), [_experiment()])
    assert WatermarkCalibration().red_flags(calm[calm["estimator"] == "watermark_calibration"], AnalysisOptions()) == []


# --------------------------------------------------------------------------- error rates by simulation


def test_under_the_null_every_watermark_test_keeps_its_false_positive_rate():
    rng = np.random.default_rng(7)
    n, alpha = 30, 0.05
    shift = detect = tpr = ks = covered = 0
    for _ in range(SIMULATIONS):
        x = rng.standard_normal(n)
        mu, low, high, p = mean_shift(x, alpha)
        shift += p < alpha
        covered += low <= 0.0 <= high
        detect += detection_share(x, alpha)[3] < alpha
        tpr += tpr_at_fpr(x, alpha)[3] < alpha
        ks += stats.kstest(x, "norm").pvalue < alpha
    low_rate, high_rate = _binomial_band(alpha, SIMULATIONS)
    assert low_rate <= shift / SIMULATIONS <= high_rate
    assert low_rate <= ks / SIMULATIONS <= high_rate
    # exact binomial tests of a count are conservative: at most alpha
    assert detect / SIMULATIONS <= high_rate and tpr / SIMULATIONS <= high_rate
    assert _binomial_band(1 - alpha, SIMULATIONS)[0] <= covered / SIMULATIONS


def test_the_tpr_bootstrap_interval_covers_the_true_rate_and_the_shift_test_has_power():
    rng = np.random.default_rng(11)
    n, alpha, mu = 60, 0.05, -1.5
    true_tpr = stats.norm.cdf(THRESHOLD - mu)
    covered = rejected = 0
    for i in range(200):
        x = rng.normal(mu, 1.0, n)
        _, low, high, _ = tpr_at_fpr(x, alpha, seed=i)
        covered += low <= true_tpr <= high
        rejected += mean_shift(x, alpha)[3] < alpha
    assert 0.9 <= covered / 200 <= 0.99
    assert rejected == 200
    assert FPR == 0.01
