"""Treated-vs-control comparisons: known answers, degenerate inputs, the effects table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from designkit.analysis import (
    ExperimentSpec,
    OutcomeSpec,
    cohen_d,
    compare_binary,
    compare_continuous,
    effects_table,
)


def binary(count: int, n: int) -> np.ndarray:
    return np.r_[np.ones(count), np.zeros(n - count)]


def wilson(count: int, n: int, z: float) -> tuple[float, float]:
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# ---- binary -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
    ],
)
def test_binary_ci_matches_newcombe_textbook_examples(x1, n1, x2, n2, low, high):
    result = compare_binary(binary(x1, n1), binary(x2, n2))
    assert result.estimate == pytest.approx(x1 / n1 - x2 / n2)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=5e-5)


def test_binary_ci_matches_hybrid_wilson_formula():
    x1, n1, x2, n2 = 13, 40, 4, 35
    z = stats.norm.isf(0.05 / 2)
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    p1, p2 = x1 / n1, x2 / n2
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    result = compare_binary(binary(x1, n1), binary(x2, n2))
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)


def test_binary_p_is_miettinen_nurminen_score_test():
    # Under H0: diff = 0 the restricted MLE is the pooled rate; MN scale by N / (N - 1).
    x1, n1, x2, n2 = 13, 40, 4, 35
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2) * (n1 + n2) / (n1 + n2 - 1)
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    result = compare_binary(binary(x1, n1), binary(x2, n2))
    assert result.p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_binary_effect_size_is_cohen_h():
    result = compare_binary(binary(30, 50), binary(10, 50))
    h = 2 * math.asin(math.sqrt(0.6)) - 2 * math.asin(math.sqrt(0.2))
    assert result.effect_size == pytest.approx(h)
    assert result.effect_size_name == "cohen_h"
    assert (result.treated_mean, result.control_mean) == (0.6, 0.2)


def test_binary_all_zero_arms_give_nan_p_but_a_bounding_ci():
    result = compare_binary(np.zeros(100), np.zeros(100))
    assert math.isnan(result.p)
    assert result.ci_low < 0 < result.ci_high < 0.05
    assert "no variation" in result.note


def test_binary_total_separation_is_significant():
    result = compare_binary(np.ones(30), np.zeros(30))
    assert result.p < 1e-6 and result.ci_low > 0.8 and result.note == ""


def test_binary_arm_with_one_item_gives_nan_inference():
    result = compare_binary(np.ones(1), binary(3, 10))
    assert math.isnan(result.p) and math.isnan(result.ci_low)
    assert result.n_treated == 1 and "fewer than 2" in result.note


def test_binary_rejects_non_binary_values():
    with pytest.raises(ValueError, match="binary"):
        compare_binary(np.array([0, 1, 2]), np.array([0, 1, 1]))


def test_binary_drops_unscored_items():
    result = compare_binary(np.array([1, 0, np.nan, 1]), np.array([0, 0, 1]))
    assert result.n_treated == 3 and result.treated_mean == pytest.approx(2 / 3)


# ---- continuous ---------------------------------------------------------------------------

def test_welch_matches_formula():
    t = np.array([5.1, 4.8, 6.3, 5.9, 7.2, 6.0])
    c = np.array([4.2, 3.9, 5.1, 4.4, 4.0, 4.8, 3.7, 5.5])
    v1, v2 = t.var(ddof=1) / t.size, c.var(ddof=1) / c.size
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (t.size - 1) + v2**2 / (c.size - 1))
    diff = t.mean() - c.mean()
    q = stats.t.ppf(0.975, df)
    result = compare_continuous(t, c)
    assert result.estimate == pytest.approx(diff)
    assert (result.ci_low, result.ci_high) == pytest.approx((diff - q * se, diff + q * se))
    assert result.p == pytest.approx(2 * stats.t.sf(abs(diff / se), df))
    assert result.method == "welch"


def test_cohen_d_uses_pooled_sd():
    # means 4 and 2, variances 4 and 1, pooled variance (2*4 + 2*1) / 4 = 2.5
    assert cohen_d(np.array([2.0, 4, 6]), np.array([1.0, 2, 3])) == pytest.approx(2 / math.sqrt(2.5))


def test_cohen_d_agrees_with_statsmodels_hedges_g_before_bias_correction():
    from statsmodels.stats.meta_analysis import effectsize_smd

    rng = np.random.default_rng(3)
    t, c = rng.normal(1, 2, 20), rng.normal(0, 1, 30)
    g, _ = effectsize_smd(t.mean(), t.std(ddof=1), t.size, c.mean(), c.std(ddof=1), c.size)
    correction = 1 - 3 / (4 * (t.size + c.size) - 9)
    assert cohen_d(t, c) == pytest.approx(g / correction)


def test_permutation_p_of_two_by_two_split_is_one_third():
    # 6 ways to split {1,2,3,4} into two pairs; only the 2 fully separated ones are as extreme.
    result = compare_continuous(np.array([1.0, 2.0]), np.array([3.0, 4.0]), method="bootstrap")
    assert result.p == pytest.approx(1 / 3)


def test_bootstrap_ci_is_close_to_welch_for_normal_data():
    rng = np.random.default_rng(11)
    t, c = rng.normal(0.5, 1, 200), rng.normal(0, 1, 200)
    welch = compare_continuous(t, c)
    boot = compare_continuous(t, c, method="bootstrap", seed=1, n_resamples=2999)
    width = welch.ci_high - welch.ci_low
    assert abs(boot.ci_low - welch.ci_low) < 0.1 * width
    assert abs(boot.ci_high - welch.ci_high) < 0.1 * width
    assert boot.p < 0.01


def test_bootstrap_is_reproducible_with_a_seed():
    rng = np.random.default_rng(2)
    t, c = rng.normal(size=15), rng.normal(size=15)
    first = compare_continuous(t, c, method="bootstrap", seed=5, n_resamples=499)
    assert first == compare_continuous(t, c, method="bootstrap", seed=5, n_resamples=499)


@pytest.mark.parametrize("method", ["welch", "bootstrap"])
def test_continuous_without_variation_gives_nan_inference(method):
    result = compare_continuous(np.full(5, 2.0), np.full(5, 1.0), method=method)
    assert result.estimate == 1.0
    assert math.isnan(result.p) and math.isnan(result.ci_low) and math.isnan(result.effect_size)
    assert result.note == "no variation within either arm"


def test_continuous_with_one_control_item_gives_nan_inference():
    result = compare_continuous(np.arange(5.0), np.array([1.0]))
    assert math.isnan(result.p) and "fewer than 2" in result.note


def test_bootstrap_false_positive_rate_and_coverage():
    """Simulation check for the bootstrap path (the calibration script runs it at 500)."""
    rng = np.random.default_rng(123)
    replicates, n = 200, 30
    shift = 0.4
    t = rng.normal(shift, 1, (replicates, n))
    c = rng.normal(0, 1, (replicates, n))
    null = rng.normal(0, 1, (replicates, n))
    fp = np.mean([compare_continuous(a, b, method="bootstrap", seed=i, n_resamples=499).p < 0.05
                  for i, (a, b) in enumerate(zip(null, c))])
    cover = np.mean([
        (r := compare_continuous(a, b, method="bootstrap", seed=i, n_resamples=499)).ci_low
        <= shift <= r.ci_high
        for i, (a, b) in enumerate(zip(t, c))
    ])
    mcse = math.sqrt(0.05 * 0.95 / replicates)
    assert abs(fp - 0.05) <= 3.2 * mcse
    assert abs(cover - 0.95) <= 3.2 * mcse


# ---- effects table ------------------------------------------------------------------------

def test_effects_table_compares_every_treated_arm_outcome_and_step(two_experiments):
    frame, specs = two_experiments
    table = effects_table(frame, specs)
    # contam: 2 arms x 2 outcomes x 2 steps; canary: 1 arm x 1 outcome x 2 steps
    assert len(table) == 10
    assert set(table["control_arm"]) == {"control"}
    assert table["p_adj"].isna().all()
    row = table.query("experiment == 'contam' and arm == 'x4' and outcome == 'correct' and step == 200")
    rows = frame.query("experiment == 'contam' and outcome == 'correct' and step == 200")
    expected = compare_binary(rows.query("arm == 'x4'")["value"], rows.query("arm == 'control'")["value"])
    assert row["estimate"].item() == pytest.approx(expected.estimate)
    assert row["p"].item() == pytest.approx(expected.p)
    assert row["dose"].item() == 4 and row["outcome_type"].item() == "binary"


def test_confirmatory_family_is_primary_outcome_at_final_step(two_experiments):
    frame, specs = two_experiments
    table = effects_table(frame, specs)
    confirmatory = table[table["family"] == "confirmatory"]
    assert sorted(zip(confirmatory["experiment"], confirmatory["arm"])) == [
        ("canary", "x16"), ("contam", "x1"), ("contam", "x4")]
    assert (confirmatory["step"] == 200).all() and confirmatory["primary"].all()


def test_declared_arm_without_scores_yields_nan_row_not_a_missing_row(two_experiments):
    frame, specs = two_experiments
    frame = frame[~((frame["experiment"] == "contam") & (frame["arm"] == "x1"))]
    table = effects_table(frame, specs)
    missing = table.query("experiment == 'contam' and arm == 'x1'")
    assert len(missing) == 4 and missing["p"].isna().all() and (missing["n_treated"] == 0).all()


def test_experiment_without_control_arm_is_skipped(two_experiments):
    frame, specs = two_experiments
    no_control = ExperimentSpec("canary", None, (OutcomeSpec("loss", "continuous", primary=True),))
    table = effects_table(frame, [specs[0], no_control])
    assert set(table["experiment"]) == {"contam"}


def test_effects_table_rejects_frame_without_required_columns(two_experiments):
    frame, specs = two_experiments
    with pytest.raises(ValueError, match="missing \\['value'\\]"):
        effects_table(frame.drop(columns="value"), specs)


def test_bootstrap_rows_do_not_depend_on_other_experiments(two_experiments):
    frame, specs = two_experiments
    kwargs = dict(continuous_method="bootstrap", n_resamples=199, seed=3)
    both = effects_table(frame, specs, **kwargs).query("experiment == 'canary'")
    alone = effects_table(frame, specs[1:], **kwargs)
    assert both["ci_low"].tolist() == alone["ci_low"].tolist()
