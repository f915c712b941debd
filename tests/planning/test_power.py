import math

import numpy as np
from scipy import stats

from designkit.planning.power import minimal_detectable_effect


def test_continuous_mde_matches_the_normal_approximation():
    d, name, natural = minimal_detectable_effect(100, 100, "continuous")
    assert name == "cohen_d" and natural is None
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    # the t-test needs a slightly larger effect than the normal approximation
    assert z * math.sqrt(2 / 100) < d < z * math.sqrt(2 / 100) * 1.01


def test_binary_mde_converts_cohens_h_to_percentage_points():
    h, name, natural = minimal_detectable_effect(100, 100, "binary", baseline=0.25)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert name == "cohen_h"
    # equal up to the negligible far-tail term NormalIndPower includes for two-sided tests
    assert math.isclose(h, z * math.sqrt(2 / 100), rel_tol=1e-4)
    p1 = 0.25 + natural
    assert math.isclose(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(0.25)), h, rel_tol=1e-9)


def test_simulated_power_at_the_mde_is_close_to_the_target():
    d, _, _ = minimal_detectable_effect(50, 50, "continuous")
    rng = np.random.default_rng(0)
    hits = [stats.ttest_ind(rng.normal(d, 1, 50), rng.normal(0, 1, 50)).pvalue < 0.05 for _ in range(2000)]
    assert abs(np.mean(hits) - 0.8) < 0.035


def test_tiny_arms_have_no_mde():
    d, _, _ = minimal_detectable_effect(1, 10, "continuous")
    assert math.isnan(d)
