"""forgetting_curve: Welch gap per arm and step against a known answer (scipy), steps since
seen from the arm's replacement step, a null error rate near alpha, and its figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from designkit.analysis import AnalysisOptions
from designkit.analysis.estimator import effects_table
from designkit.analysis.forgetting import ForgettingCurve
from designkit.plan_types import ArmSpec, ExperimentSpec, OutcomeSpec

OUTCOME = OutcomeSpec(name="loss", probe="window", column="loss", type="continuous", expected_sign=-1, primary=True, estimator="forgetting_curve")


def _spec(replace_at: dict[str, int]) -> ExperimentSpec:
    arms = (ArmSpec("control", 0, False),) + tuple(ArmSpec(a, 1, True) for a in replace_at)
    return ExperimentSpec(name="fc", control_arm="control", outcomes=(OUTCOME,), arms=arms, kind="forgetting", params={"replace_at": replace_at})


def _frame(values: dict[tuple[str, int], np.ndarray]) -> pd.DataFrame:
    rows = []
    for (arm, step), v in values.items():
        for i, x in enumerate(v):
            rows.append({"experiment": "fc", "arm": arm, "dose": int(arm != "control"), "inserted": arm != "control",
                         "item_index": i + (0 if arm == "control" else 1000 * (1 + len(arm))), "step": step, "outcome": "loss", "value": float(x)})
    return pd.DataFrame(rows)


def test_forgetting_curve_is_the_welch_gap_labelled_by_steps_since_seen():
    rng = np.random.default_rng(0)
    values = {}
    for step in (10, 50, 100):
        values[("control", step)] = rng.normal(4.0, 0.1, 30)
        values[("early", step)] = rng.normal(3.9, 0.1, 30)
        values[("late", step)] = rng.normal(3.8, 0.1, 30)
    table = effects_table(_frame(values), [_spec({"early": 5, "late": 60})])
    curve = ForgettingCurve.curve(table).set_index(["arm", "step"])
    for (arm, step), row in curve.iterrows():
        treated, control = values[(arm, step)], values[("control", step)]
        expected = stats.ttest_ind(treated, control, equal_var=False)
        ci = expected.confidence_interval(0.95)
        assert np.isclose(row["estimate"], treated.mean() - control.mean())
        assert np.isclose(row["p"], expected.pvalue) and np.isclose(row["ci_low"], ci.low) and np.isclose(row["ci_high"], ci.high)
        assert row["steps_since_seen"] == step - {"early": 5, "late": 60}[arm] - 1
    assert curve.loc[("late", 10), "steps_since_seen"] < 0  # a placebo row before the replacement
    assert (curve.xs(100, level="step")["family"] == "confirmatory").all()


def test_forgetting_curve_rejects_at_about_alpha_under_the_null():
    rng = np.random.default_rng(1)
    rejections, n_sim = 0, 400
    for _ in range(n_sim):
        frame = _frame({("control", 20): rng.normal(4, 0.1, 16), ("late", 20): rng.normal(4, 0.1, 16)})
        rejections += int(ForgettingCurve().estimate(frame, _task(frame))[0].p < 0.05)
    # binomial 99.9% band around 5% for 400 simulations
    assert stats.binomtest(rejections, n_sim, 0.05).pvalue > 0.001, rejections


def test_forgetting_curve_figure_draws_a_png_per_experiment():
    rng = np.random.default_rng(2)
    values = {(arm, step): rng.normal(4.0 - 0.1 * (arm == "late"), 0.1, 12) for arm in ("control", "late") for step in (10, 30, 60)}
    frame = _frame(values)
    table = effects_table(frame, [_spec({"late": 20})])
    figures = ForgettingCurve().figures(table, frame, AnalysisOptions())
    assert [f.name for f in figures] == ["forgetting_fc.png"] and figures[0].png.startswith(b"\x89PNG")
    section = ForgettingCurve().sections(table, AnalysisOptions())[0]
    assert section.table["steps_since_seen"].tolist() == [-11.0, 9.0, 39.0]


def _task(frame: pd.DataFrame):
    from designkit.analysis.estimator import EstimationTask

    return EstimationTask(_spec({"late": 5}), OUTCOME, AnalysisOptions(), {"control": 0, "late": 1}, int(frame["step"].max()))
