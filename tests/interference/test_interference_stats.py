"""The interference statistics on fabricated score tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from designkit.analysis.interference import (
    OutcomeInfo,
    factorial_cells,
    one_at_a_time_cells,
    paired_difference,
    replicated_difference,
)
from designkit.planning.interference import factorial_matrix, one_at_a_time_runs

N_ITEMS = 200
FACTORS = ["a", "b", "c"]
OUTCOMES = [OutcomeInfo(name, "score", "continuous", True) for name in FACTORS]
MARGINS = {name: 0.05 for name in FACTORS}


def fabricate(runs, effect, rng, noise=0.01, run_shift=0.0):
    """Scores of every experiment's items in every run: item baseline + effects of the runs' on-sets + noise.

    ``effect[(i, j)]`` is how much switching j on moves i's outcome; a key ``(i, (j, k))``
    adds an interaction (extra shift when both j and k are on).
    """
    base = {name: rng.normal(0, 1, N_ITEMS) for name in FACTORS}
    rows = []
    for run in runs:
        shift = rng.normal(0, run_shift)
        for i in FACTORS:
            value = base[i] + shift + rng.normal(0, noise, N_ITEMS)
            for key, size in effect.items():
                if key[0] != i:
                    continue
                on = key[1] if isinstance(key[1], tuple) else (key[1],)
                if all(j in run["on"] for j in on):
                    value = value + size
            rows.append(pd.DataFrame({"run": run["name"], "replicate": run["replicate"], "experiment": i, "outcome": "score",
                                      "item_index": np.arange(N_ITEMS), "value": value}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def oat_runs(replicates=1):
    return [{"name": f"{n}-r{r}", "on": list(on), "replicate": r} for r in range(replicates) for n, on in one_at_a_time_runs(FACTORS)]


def cell(cells, experiment, source):
    return cells[(cells["experiment"] == experiment) & (cells["source"] == source)].iloc[0]


def test_planted_cross_effect_is_an_effect_and_independent_pairs_are_negligible():
    rng = np.random.default_rng(1)
    runs = oat_runs()
    cells = one_at_a_time_cells(fabricate(runs, {("a", "b"): 0.2, ("a", "a"): 0.5}, rng), runs, FACTORS, OUTCOMES, MARGINS)
    planted = cell(cells, "a", "b")
    assert planted["verdict"] == "effect" and planted["estimate"] == pytest.approx(0.2, abs=0.01)
    for i, j in [("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]:
        assert cell(cells, i, j)["verdict"] == "negligible", (i, j)
    assert cell(cells, "a", "a")["comparison"] == "own" and cell(cells, "a", "a")["verdict"] == ""
    # all together minus a alone: b's data is among the others
    assert cell(cells, "a", "others")["verdict"] == "effect" and cell(cells, "c", "others")["verdict"] == "negligible"


def test_effect_inside_the_margin_but_noisy_is_inconclusive_not_negligible():
    rng = np.random.default_rng(2)
    runs = oat_runs()
    cells = one_at_a_time_cells(fabricate(runs, {}, rng, noise=0.6), runs, FACTORS, OUTCOMES, MARGINS)
    tested = cells[cells["family"] == "primary"]
    assert set(tested["verdict"]) == {"inconclusive"}  # CIs ±0.1 around 0: neither an effect nor inside ±0.05


def test_replicates_bring_run_level_noise_into_the_interval():
    rng = np.random.default_rng(3)
    runs = oat_runs(replicates=3)
    frame = fabricate(runs, {}, rng, noise=0.01, run_shift=0.05)
    cells = one_at_a_time_cells(frame, runs, FACTORS, OUTCOMES, MARGINS)
    single = one_at_a_time_cells(frame[frame["replicate"] == 0], [r for r in runs if r["replicate"] == 0], FACTORS, OUTCOMES, MARGINS)
    width = (cells["ci_high"] - cells["ci_low"]).median()
    assert width > 3 * (single["ci_high"] - single["ci_low"]).median()
    assert (cells["method"] == "paired_random_effects_pm_t").all()


def test_paired_difference_matches_a_paired_t_test():
    from scipy import stats

    rng = np.random.default_rng(4)
    x = pd.Series(rng.normal(0, 1, 50))
    y = x + rng.normal(0.1, 0.3, 50)
    out = paired_difference(y, x, margin=0.2, alpha=0.1)
    reference = stats.ttest_rel(y, x)
    assert out["p"] == pytest.approx(reference.pvalue) and out["estimate"] == pytest.approx((y - x).mean())
    # TOST passes exactly when the (1 - 2 alpha) CI is inside the margin
    assert (out["p_tost"] < 0.05) == (-0.2 < out["ci_low"] and out["ci_high"] < 0.2)


def test_error_rates_by_simulation():
    """Under no effect the test rejects at about alpha; at an effect on the margin, TOST claims equivalence at most alpha."""
    rng = np.random.default_rng(5)
    n_sim, n = 400, 60
    rejections = equivalences = 0
    for _ in range(n_sim):
        x = pd.Series(rng.normal(0, 1, n))
        null = paired_difference(x + rng.normal(0, 0.1, n), x, margin=0.02, alpha=0.1)
        rejections += null["p"] < 0.05
        on_margin = paired_difference(x + rng.normal(0.02, 0.05, n), x, margin=0.02, alpha=0.1)
        equivalences += on_margin["p_tost"] < 0.05
    assert 0.02 <= rejections / n_sim <= 0.085
    assert equivalences / n_sim <= 0.075


def test_replicated_difference_with_one_replicate_is_the_paired_test():
    rng = np.random.default_rng(6)
    x = pd.Series(rng.normal(0, 1, 30))
    y = x + 0.05
    assert replicated_difference([(y, x)], 0.1, 0.1) == paired_difference(y, x, 0.1, 0.1)


def test_factorial_regression_recovers_main_effects_and_an_aliased_interaction():
    factors = [f"c{i}" for i in range(8)]
    matrix, _ = factorial_matrix(8, 4)
    runs = [{"name": f"f{k}", "on": [f for f, lv in zip(factors, row) if lv > 0], "replicate": 0} for k, row in enumerate(matrix)]
    rng = np.random.default_rng(7)
    base = rng.normal(0, 1, N_ITEMS)
    rows = []
    for run in runs:
        on = set(run["on"])
        value = base + rng.normal(0, 0.01, N_ITEMS) + 0.2 * ("c1" in on) + 0.3 * ({"c0", "c3"} <= on)
        rows.append(pd.DataFrame({"run": run["name"], "replicate": 0, "experiment": "c0", "outcome": "score",
                                  "item_index": np.arange(N_ITEMS), "value": value}))  # fmt: skip
    frame = pd.concat(rows, ignore_index=True)
    outcomes = [OutcomeInfo("c0", "score", "continuous", True)]
    cells = factorial_cells(frame, runs, factors, outcomes, {"c0": 0.05})
    by_source = cells.set_index("source")
    # c0 and c3 together add 0.3: main effects of 0.15 each plus an interaction of 0.3
    assert by_source.loc["c1", "estimate"] == pytest.approx(0.2, abs=0.01) and by_source.loc["c1", "verdict"] == "effect"
    assert by_source.loc["c3", "estimate"] == pytest.approx(0.15, abs=0.01)
    assert by_source.loc["c2", "verdict"] == "negligible"
    interaction = cells[(cells["comparison"] == "interaction") & cells["source"].str.contains("c0:c3") | cells["aliases"].str.contains("c0:c3")]
    assert len(interaction) == 1 and interaction.iloc[0]["estimate"] == pytest.approx(0.3, abs=0.01)
    assert interaction.iloc[0]["verdict"] == "effect"
    assert len(cells[cells["comparison"] == "interaction"]) == 7  # one per alias chain of the 28 pairs


def test_power_simulation_detects_large_effects_and_keeps_null_cells_quiet():
    from designkit.analysis.interference_power_sim import DesignCase, power_table

    table = power_table([DesignCase("one-at-a-time", 4, 40), DesignCase("factorial-IV", 5, 40)], delta=0.1, sigma=0.1, tau=0.0, sims=8)
    oat, fac = table.iloc[0], table.iloc[1]
    assert oat["runs"] == 6 and fac["runs"] == 16
    assert oat["power_cross"] == 1.0 and fac["power_cross"] == 1.0 and fac["power_interaction"] == 1.0
    assert np.isnan(oat["power_interaction"])
    assert oat["false_positive"] <= 0.25 and fac["false_positive"] <= 0.25
