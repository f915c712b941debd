"""TOST equivalence tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion

from designkit.analysis import tost_equivalence


def test_continuous_tost_is_the_larger_of_two_one_sided_welch_tests():
    rng = np.random.default_rng(0)
    t, c = rng.normal(0.1, 1, 80), rng.normal(0, 1.3, 70)
    low, high = -0.4, 0.4
    # H0 diff <= low: test (t - low) vs c, greater; H0 diff >= high: (t - high) vs c, less.
    p_low = stats.ttest_ind(t - low, c, equal_var=False, alternative="greater").pvalue
    p_high = stats.ttest_ind(t - high, c, equal_var=False, alternative="less").pvalue
    result = tost_equivalence(t, c, "continuous", 0.4)
    assert result.p_tost == pytest.approx(max(p_low, p_high))
    assert result.estimate == pytest.approx(t.mean() - c.mean())
    assert (result.margin_low, result.margin_high, result.ci_level) == (-0.4, 0.4, pytest.approx(0.9))


def test_tost_decision_equals_ci_inside_margin():
    rng = np.random.default_rng(1)
    for _ in range(30):
        t, c = rng.normal(rng.uniform(-0.5, 0.5), 1, 50), rng.normal(0, 1, 50)
        r = tost_equivalence(t, c, "continuous", (-0.3, 0.35))
        assert r.equivalent == (-0.3 < r.ci_low and r.ci_high < 0.35)


def test_binary_tost_uses_two_one_sided_score_tests():
    x1, n1, x2, n2 = 52, 100, 48, 100
    t, c = np.r_[np.ones(x1), np.zeros(n1 - x1)], np.r_[np.ones(x2), np.zeros(n2 - x2)]
    p_low = sm_proportion.test_proportions_2indep(x1, n1, x2, n2, value=-0.15, method="score", alternative="larger").pvalue
    p_high = sm_proportion.test_proportions_2indep(x1, n1, x2, n2, value=0.15, method="score", alternative="smaller").pvalue
    result = tost_equivalence(t, c, "binary", 0.15)
    assert result.p_tost == pytest.approx(max(p_low, p_high))
    assert result.estimate == pytest.approx(0.04)


def test_clear_cases():
    same = np.r_[np.ones(500), np.zeros(500)]
    assert tost_equivalence(same, same, "binary", 0.05).equivalent
    assert not tost_equivalence(np.ones(50), np.zeros(50), "binary", 0.05).equivalent
    assert tost_equivalence(np.zeros(200), np.zeros(200), "binary", 0.05).equivalent


def test_degenerate_continuous_input_is_not_equivalent():
    r = tost_equivalence(np.ones(5), np.ones(5), "continuous", 0.1)
    assert math.isnan(r.p_tost) and not r.equivalent and r.note


def test_margin_must_be_an_interval():
    with pytest.raises(ValueError, match="low < high"):
        tost_equivalence(np.zeros(3), np.zeros(3), "continuous", (0.2, -0.2))


def test_continuous_tost_size_at_the_margin():
    """Simulation: true difference on the margin -> equivalence claimed at most alpha."""
    rng = np.random.default_rng(2)
    replicates = 300
    claims = [tost_equivalence(rng.normal(0.3, 1, 60), rng.normal(0, 1, 60), "continuous", 0.3).equivalent
              for _ in range(replicates)]
    assert np.mean(claims) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / replicates)
