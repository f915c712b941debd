"""Minimal detectable effects, planned and achieved."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_effectsize

from designkit.analysis import (
    achieved_mde_table,
    compare_binary,
    effects_table,
    minimal_detectable_effect,
    proportion_difference_from_h,
)


def test_binary_mde_is_the_normal_approximation_formula():
    # h = (z_{1-alpha/2} + z_{power}) sqrt(1/n1 + 1/n2); the far tail adds < 1e-6 power here.
    h, name, natural = minimal_detectable_effect(100, 100, "binary")
    assert name == "cohen_h" and natural is None
    assert h == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(2 / 100), rel=1e-4)


def test_unequal_arms_use_the_harmonic_sample_size():
    h, _, _ = minimal_detectable_effect(50, 200, "binary", alpha=0.01, power=0.9)
    expected = (stats.norm.ppf(0.995) + stats.norm.ppf(0.9)) * math.sqrt(1 / 50 + 1 / 200)
    assert h == pytest.approx(expected, rel=1e-4)


def test_continuous_mde_matches_cohen_table():
    # Cohen (1988): 64 per group detect d = 0.5 with power 0.80 at alpha 0.05.
    d, name, _ = minimal_detectable_effect(64, 64, "continuous")
    assert name == "cohen_d" and d == pytest.approx(0.5, abs=0.005)
    # and the noncentral t gives exactly the requested power at that d
    df, nc = 126, d * math.sqrt(64 * 64 / 128)
    crit = stats.t.ppf(0.975, df)
    power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=1e-6)


def test_natural_units_invert_cohen_h():
    h, _, natural = minimal_detectable_effect(100, 100, "binary", baseline=0.25)
    assert natural > 0
    assert proportion_effectsize(0.25 + natural, 0.25) == pytest.approx(h)
    _, _, down = minimal_detectable_effect(100, 100, "binary", baseline=0.25, direction=-1)
    assert proportion_effectsize(0.25 + down, 0.25) == pytest.approx(-h)


def test_impossible_natural_difference_is_nan():
    assert math.isnan(proportion_difference_from_h(0.5, 0.99, 1))
    assert proportion_difference_from_h(0.0, 0.3) == pytest.approx(0.0)


def test_too_few_items_give_nan():
    h, _, natural = minimal_detectable_effect(1, 100, "binary", baseline=0.3)
    assert math.isnan(h) and math.isnan(natural)


def test_power_at_the_mde_is_the_planned_power_by_simulation():
    """Simulation: the score test run at the planned MDE rejects about 80% of the time."""
    rng = np.random.default_rng(8)
    n, baseline, replicates = 100, 0.3, 300
    _, _, natural = minimal_detectable_effect(n, n, "binary", baseline=baseline)
    hits = [compare_binary(rng.random(n) < baseline + natural, rng.random(n) < baseline).p < 0.05
            for _ in range(replicates)]
    assert abs(np.mean(hits) - 0.8) <= 3 * math.sqrt(0.16 / replicates) + 0.03


def test_achieved_table_uses_final_step_and_joins_the_plan(two_experiments):
    frame, specs = two_experiments
    effects = effects_table(frame, specs)
    planned = pd.DataFrame({
        "experiment": ["contam"], "arm": ["x4"], "outcome": ["correct"], "n_treated": [40],
        "n_control": [40], "mde_effect_size": [0.63], "mde_natural": [0.3],
    })
    table = achieved_mde_table(effects, experiments=specs, planned_power=planned)
    assert (table["step"] == 200).all() and len(table) == 5
    row = table.query("arm == 'x4' and outcome == 'correct'").iloc[0]
    h, _, natural = minimal_detectable_effect(40, 40, "binary", baseline=row["baseline"])
    assert row["mde_effect_size"] == pytest.approx(h) and row["mde_natural"] == pytest.approx(natural)
    assert row["planned_mde_effect_size"] == 0.63
    loss = table.query("experiment == 'canary'").iloc[0]
    assert loss["effect_size_name"] == "cohen_d" and math.isnan(loss["mde_natural"])
