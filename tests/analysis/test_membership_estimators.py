"""Membership estimators (auc, tpr_at_fpr, exposure) and per_stratum: known answers and null error rates."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from designkit.analysis.estimator import EstimationTask, estimator_class
from designkit.analysis.membership import auc_delong, exposure_bits, tpr_at_fpr
from designkit.analysis.options import AnalysisOptions
from designkit.plan_types import ArmSpec, ExperimentSpec, OutcomeSpec


def _task(outcome: OutcomeSpec, options=None) -> EstimationTask:
    spec = ExperimentSpec("e", "control", (outcome,), arms=(ArmSpec("control", 0, False), ArmSpec("x4", 4, True)))
    return EstimationTask(spec, outcome, options or AnalysisOptions(n_resamples=499), {"control": 0, "x4": 4}, 10)


def _frame(treated, control, strata_t=None, strata_c=None) -> pd.DataFrame:
    rows = [("x4", v, s) for v, s in zip(treated, strata_t or [""] * len(treated))]
    rows += [("control", v, s) for v, s in zip(control, strata_c or [""] * len(control))]
    return pd.DataFrame({"experiment": "e", "arm": [r[0] for r in rows], "dose": [4 if r[0] == "x4" else 0 for r in rows],
                         "inserted": [r[0] == "x4" for r in rows], "item_index": range(len(rows)), "step": 10,
                         "outcome": "loss", "value": [r[1] for r in rows], "stratum": [r[2] for r in rows]})


def test_auc_is_u_over_n1_n2_with_the_delong_interval():
    members, nonmembers = np.array([0.9, 0.8, 0.4]), np.array([0.5, 0.3, 0.2, 0.1])
    auc, low, high, p = auc_delong(members, nonmembers)
    # pairs won: 0.9 and 0.8 beat all 4, 0.4 beats 3 -> 11 of 12
    assert auc == 11 / 12
    # placements: members beat 4/4, 4/4, 3/4 of the non-members; 2/3, 3/3, 3/3, 3/3 of the members beat each non-member
    v10, v01 = np.array([1, 1, 0.75]), np.array([2 / 3, 1, 1, 1])
    se = math.sqrt(v10.var(ddof=1) / 3 + v01.var(ddof=1) / 4)
    assert math.isclose(low, auc - 1.959964 * se, rel_tol=1e-5) and high == 1.0
    assert p == stats.mannwhitneyu(members, nonmembers).pvalue


def test_tpr_threshold_lets_at_most_one_percent_of_nonmembers_through():
    nonmembers = np.arange(200.0)
    # the 99% "higher" quantile of 0..199 is 198: only 199 of the non-members is above it
    assert tpr_at_fpr(nonmembers, nonmembers) == 1 / 200
    assert tpr_at_fpr(np.array([198.5, 300.0, 10.0, 0.0]), nonmembers) == 0.5


def test_exposure_of_the_fitted_normal_tail():
    reference = np.array([-1.0, 1.0])  # mean 0, sd sqrt(2)
    assert np.allclose(exposure_bits(np.array([0.0]), reference), 1.0)  # half the canaries score higher: 1 bit
    assert exposure_bits(np.array([5.0]), reference)[0] > exposure_bits(np.array([2.0]), reference)[0]


def test_loss_orientation_makes_lower_member_losses_a_high_auc_and_tpr():
    outcome = OutcomeSpec("loss", "continuous", primary=True, expected_sign=-1)
    frame = _frame(list(np.linspace(1, 2, 20)), list(np.linspace(3, 4, 20)))
    for name, expected in (("auc", 1.0), ("tpr_at_fpr", 1.0)):
        (row,) = estimator_class(name)().estimate(frame, _task(outcome))
        assert row.estimate == expected and row.p < 0.01 and row.family == "confirmatory"
        assert row.ci_low <= row.estimate <= row.ci_high
    (row,) = estimator_class("exposure")().estimate(frame, _task(outcome))
    assert row.estimate > 5 and row.ci_low > 0 and row.p < 0.01


def test_exposure_fits_each_stratum_on_its_own_control_canaries():
    outcome = OutcomeSpec("loss", "continuous", primary=True, expected_sign=-1)
    rng = np.random.default_rng(0)
    # two strata on different scales; members sit at their own stratum's control mean
    t = list(rng.normal(0, 1, 30)) + list(rng.normal(10, 1, 30))
    c = list(rng.normal(0, 1, 30)) + list(rng.normal(10, 1, 30))
    strata = ["a"] * 30 + ["b"] * 30
    (row,) = estimator_class("exposure")().estimate(_frame(t, c, strata, strata), _task(outcome))
    assert abs(row.estimate) < 0.6 and row.p > 0.01  # pooled fitting would give stratum a exposures near 0.1, b near 10


def test_per_stratum_gives_one_row_per_stratum_from_its_items_only():
    outcome = OutcomeSpec("loss", "continuous", primary=True, expected_sign=-1)
    t = [1.0, 1.1, 1.2, 5.0, 5.1, 5.3]
    c = [2.0, 2.2, 2.1, 5.0, 5.2, 5.1]
    strata = ["L1", "L1", "L1", "L8", "L8", "L8"]
    rows = estimator_class("per_stratum")().estimate(_frame(t, c, strata, strata), _task(outcome))
    by = {r.comparison: r for r in rows}
    assert set(by) == {"stratum:L1", "stratum:L8"}
    assert math.isclose(by["stratum:L1"].estimate, -1.0) and by["stratum:L1"].n_treated == 3
    assert abs(by["stratum:L8"].estimate) < 0.1 and all(r.family == "exploratory" for r in rows)


def test_auc_test_and_interval_hold_their_level_under_the_null():
    rng = np.random.default_rng(11)
    n_sim = 1000
    results = [auc_delong(rng.normal(size=25), rng.normal(size=25)) for _ in range(n_sim)]
    rejected = sum(p < 0.05 for *_, p in results) / n_sim
    covered = sum(low <= 0.5 <= high for _, low, high, _ in results) / n_sim
    margin = 2.5 * math.sqrt(0.05 * 0.95 / n_sim)
    assert rejected <= 0.05 + margin
    assert covered >= 0.93  # a normal AUC interval runs slightly short at n = 25 (documented: 93.6%)


def test_tpr_at_fpr_permutation_test_holds_its_level_under_the_null():
    # simulation: members and non-members from one distribution, 20 per arm (no 1% quantile to speak of)
    outcome = OutcomeSpec("loss", "continuous", primary=True, expected_sign=-1)
    rng = np.random.default_rng(5)
    options = AnalysisOptions(n_resamples=199)
    n_sim = 150
    rejected = 0
    for _ in range(n_sim):
        (row,) = estimator_class("tpr_at_fpr")().estimate(_frame(list(rng.normal(size=20)), list(rng.normal(size=20))), _task(outcome, options))
        rejected += row.p < 0.05
    assert rejected / n_sim <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / n_sim)


def test_exposure_test_and_interval_hold_their_level_under_the_null():
    # simulation: inserted and never-inserted canaries from one distribution, two strata
    outcome = OutcomeSpec("loss", "continuous", primary=True, expected_sign=-1)
    rng = np.random.default_rng(2)
    options = AnalysisOptions(n_resamples=99)
    n_sim, rejected, covered = 80, 0, 0
    strata = ["a"] * 15 + ["b"] * 15
    for _ in range(n_sim):
        t = list(rng.normal(0, 1, 15)) + list(rng.normal(5, 2, 15))
        c = list(rng.normal(0, 1, 15)) + list(rng.normal(5, 2, 15))
        (row,) = estimator_class("exposure")().estimate(_frame(t, c, strata, strata), _task(outcome, options))
        rejected += row.p < 0.05
        covered += row.ci_low <= 0 <= row.ci_high
    margin = 2.5 * math.sqrt(0.05 * 0.95 / n_sim)
    assert rejected / n_sim <= 0.05 + margin and covered / n_sim >= 0.95 - margin
