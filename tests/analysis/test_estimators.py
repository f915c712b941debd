"""The estimator registry: outcomes name their estimator, defaults follow the type, and
`ks_normal` (the proof that a non-difference estimator fits) meets its known answers and
error rates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from designkit.analysis import (
    ESTIMATORS,
    AnalysisOptions,
    ArmSpec,
    Effect,
    EstimationTask,
    Estimator,
    ExperimentSpec,
    OutcomeSpec,
    check_estimators,
    effects_table,
    estimator_class,
    estimator_for,
)
from designkit.analysis.ks_normal import VS_NORMAL, KsNormal, ks_standard_normal
from designkit.errors import InputError

from .frames import long_frame


class MedianShift(Estimator):
    """A toy estimator reached by import path only (never registered)."""

    name = "median_shift"
    outcome_types = ("continuous",)

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        last = frame[frame["step"] == task.final_step]
        control = last.loc[last["arm"] == task.experiment.control_arm, "value"].median()
        return [Effect(experiment=task.experiment.name, outcome=task.outcome.name, outcome_type=task.outcome.type,
                       arm=arm, control_arm=task.experiment.control_arm, dose=task.arm_doses[arm],
                       step=task.final_step, estimate=float(last.loc[last["arm"] == arm, "value"].median() - control),
                       ci_low=math.nan, ci_high=math.nan, p=math.nan, n_treated=0, n_control=0, treated_mean=math.nan,
                       control_mean=math.nan, effect_size=math.nan, effect_size_name="", method="median difference",
                       alpha=task.options.alpha, estimator=self.name)
                for arm in task.treated_arms]


def test_ks_distance_and_p_match_hand_computed_values():
    # one observation at 2: D = Phi(2), and for n = 1, P(D >= d) = 2 (1 - d)
    d, low, high, p, note = ks_standard_normal(np.array([2.0]), alpha=0.05)
    assert d == pytest.approx(stats.norm.cdf(2.0)) and p == pytest.approx(2 * (1 - stats.norm.cdf(2.0)))
    assert note == "" and high == 1.0
    # two observations at -1 and 1: the ECDF is 1/2 on [-1, 1), so D = Phi(1) - 1/2
    d, low, high, _, _ = ks_standard_normal(np.array([-1.0, 1.0, np.nan]), alpha=0.05)
    eps = math.sqrt(math.log(2 / 0.05) / 4)  # DKW with Massart's constant, n = 2
    assert d == pytest.approx(stats.norm.cdf(1.0) - 0.5)
    assert (low, high) == (max(0.0, d - eps), pytest.approx(min(1.0, d + eps)))


def test_ks_normal_keeps_alpha_under_the_null_and_covers_the_true_distance():
    rng = np.random.default_rng(11)
    null = [ks_standard_normal(x)[3] for x in rng.normal(0.0, 1.0, (800, 60))]
    rate = np.mean(np.array(null) < 0.05)
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 800), rate
    true_distance = 2 * stats.norm.cdf(0.25) - 1  # N(0.5, 1) vs N(0, 1)
    covered = [lo <= true_distance <= hi for _, lo, hi, _, _ in map(ks_standard_normal, rng.normal(0.5, 1.0, (400, 60)))]
    assert np.mean(covered) >= 0.95


def _z_score_experiment(estimator: str | None) -> tuple[pd.DataFrame, ExperimentSpec]:
    rng = np.random.default_rng(3)
    z = {"control": rng.normal(0, 1, (2, 80)), "x4": rng.normal(1.0, 1, (2, 80))}
    frame = long_frame("wm", {"control": (0, False), "x4": (4, True)}, {"z": z}, steps=(10, 20))
    spec = ExperimentSpec(name="wm", control_arm="control", arms=(ArmSpec("control", 0, False), ArmSpec("x4", 4, True)),
                          outcomes=(OutcomeSpec("z", "continuous", primary=True, estimator=estimator),))
    return frame, spec


def test_an_outcome_naming_ks_normal_gets_one_row_per_arm_against_the_standard_normal():
    frame, spec = _z_score_experiment("ks_normal")
    table = effects_table(frame, [spec])
    assert set(table["estimator"]) == {"ks_normal"} and set(table["comparison"]) == {VS_NORMAL}
    assert len(table) == 2 * 2  # both arms, both steps
    confirmatory = table[table["family"] == "confirmatory"]
    assert list(zip(confirmatory["arm"], confirmatory["step"])) == [("x4", 20)]
    shifted = confirmatory.iloc[0]
    assert shifted["p"] < 1e-6 and shifted["ci_low"] <= shifted["estimate"] <= shifted["ci_high"]
    control = table[(table["arm"] == "control") & (table["step"] == 20)].iloc[0]
    assert control["p"] > 0.01 and control["family"] == "exploratory"
    section = KsNormal().sections(table, AnalysisOptions())[0]
    assert list(section.table["arm"]) == ["control", "x4"]


def test_defaults_follow_the_outcome_type_and_the_continuous_method():
    binary, continuous = OutcomeSpec("c", "binary"), OutcomeSpec("m", "continuous")
    assert estimator_for(binary, AnalysisOptions()).name == "newcombe"
    assert estimator_for(continuous, AnalysisOptions()).name == "welch"
    assert estimator_for(continuous, AnalysisOptions(continuous_method="bootstrap")).name == "bootstrap"
    frame, spec = _z_score_experiment(None)
    welch = effects_table(frame, [spec])
    assert set(welch["estimator"]) == {"welch"} and (welch["arm"] == "x4").all()
    assert welch["p"].iloc[-1] == pytest.approx(stats.ttest_ind(*(
        frame[(frame["step"] == 20) & (frame["arm"] == a)]["value"] for a in ("x4", "control")), equal_var=False).pvalue)


def test_an_estimator_is_found_by_import_path_and_checked():
    assert estimator_class(f"{__name__}:MedianShift") is MedianShift
    frame, spec = _z_score_experiment(f"{__name__}:MedianShift")
    table = effects_table(frame, [spec])
    assert list(table["estimator"]) == ["median_shift"] and table["estimate"].iloc[0] > 0.5
    # the refusal lists every registered estimator, built-ins of every kind included, sorted
    with pytest.raises(InputError) as unknown:
        estimator_class("no_such_estimator")
    assert {"bootstrap", "ks_normal", "newcombe", "welch", "watermark_shift"} <= set(ESTIMATORS.names())
    assert f"expected one of the estimators {', '.join(sorted(ESTIMATORS.names()))}" in str(unknown.value)
    with pytest.raises(InputError, match="subclass of designkit.analysis.estimator.Estimator"):
        estimator_class("math:pi", file="plan.json", field="x")
    wrong_type = ExperimentSpec(name="e", control_arm=None, outcomes=(OutcomeSpec("c", "binary", primary=True, estimator="welch"),))
    check_estimators([spec], AnalysisOptions(), "plan.json")
    with pytest.raises(InputError) as refused:
        check_estimators([spec, wrong_type], AnalysisOptions(), "plan.json")
    assert str(refused.value) == ("plan.json: experiments[1].outcomes[0].estimator: expected an estimator for binary "
                                  "outcomes ('c'); 'welch' takes continuous outcomes")
