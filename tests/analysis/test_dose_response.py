"""Dose-response GLMs against closed-form answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from designkit.analysis import DoseResponse, ExperimentSpec, OutcomeSpec, dose_response_table, fit_dose_response

DOSES = (0, 1, 4, 16)


def item_frame(values: np.ndarray, n_per_dose: int, steps: tuple[int, ...] = (500,)) -> pd.DataFrame:
    doses = np.repeat(DOSES, n_per_dose)
    return pd.DataFrame({
        "dose": np.tile(doses, len(steps)),
        "item_index": np.tile(np.arange(doses.size), len(steps)),
        "step": np.repeat(steps, doses.size),
        "value": values,
    })


def term(fit: pd.DataFrame, model: str, name: str) -> pd.Series:
    return fit[(fit["model"] == model) & (fit["term"] == name)].iloc[0]


def test_gaussian_slope_is_ols_with_hc1_standard_error():
    rng = np.random.default_rng(0)
    n = 25
    x = np.log1p(np.repeat(DOSES, n).astype(float))
    y = 1.0 + 0.3 * x + rng.normal(0, 1 + 0.3 * x)  # heteroscedastic on purpose
    fit = fit_dose_response(item_frame(y, n), "continuous")
    X = np.column_stack([np.ones_like(x), x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    e = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    # one row per item: the cluster sandwich is HC1, scale N / (N - K)
    cov = bread @ (X.T * e**2) @ X @ bread * len(y) / (len(y) - 2)
    slope = term(fit, "log1p_dose", "log1p(dose)")
    assert slope["estimate"] == pytest.approx(beta[1])
    assert slope["se"] == pytest.approx(math.sqrt(cov[1, 1]))
    assert slope["p"] == pytest.approx(2 * stats.norm.sf(abs(beta[1]) / math.sqrt(cov[1, 1])))
    assert slope["n_clusters"] == slope["n_obs"] == 4 * n and slope["cov_type"] == "cluster"


def test_gaussian_categorical_terms_are_arm_mean_differences():
    rng = np.random.default_rng(1)
    n = 20
    y = rng.normal(np.repeat([0.0, 0.5, 1.0, 2.0], n), 1.0)
    fit = fit_dose_response(item_frame(y, n), "continuous", models=("dose_categorical",))
    means = y.reshape(4, n).mean(axis=1)
    assert term(fit, "dose_categorical", "Intercept")["estimate"] == pytest.approx(means[0])
    for k, dose in enumerate(DOSES[1:], start=1):
        assert term(fit, "dose_categorical", f"dose={dose}")["estimate"] == pytest.approx(means[k] - means[0])


def test_binomial_categorical_terms_are_log_odds_ratios_vs_control():
    n = 50
    counts = [10, 15, 30, 45]
    y = np.concatenate([np.r_[np.ones(c), np.zeros(n - c)] for c in counts])
    fit = fit_dose_response(item_frame(y, n), "binary", models=("dose_categorical",))
    logit = [math.log(c / (n - c)) for c in counts]
    for k, dose in enumerate(DOSES[1:], start=1):
        row = term(fit, "dose_categorical", f"dose={dose}")
        assert row["estimate"] == pytest.approx(logit[k] - logit[0], rel=1e-6)
        # robust (HC1-type) SE of a saturated logit: Woolf SE times sqrt(N / (N - K))
        woolf = math.sqrt(sum(1 / v for v in (counts[k], n - counts[k], counts[0], n - counts[0])))
        assert row["se"] == pytest.approx(woolf * math.sqrt(4 * n / (4 * n - 4)), rel=1e-4)
    assert fit["glm_family"].eq("binomial").all()


def test_pooled_checkpoints_use_item_clusters_and_step_effects():
    rng = np.random.default_rng(2)
    n, steps = 15, (100, 200, 300)
    items = 4 * n
    x = np.log1p(np.repeat(DOSES, n).astype(float))
    item_effect = rng.normal(0, 1, items)
    step_effect = np.array([0.0, 0.5, 1.0])
    y = (0.2 * x + item_effect + step_effect[:, None] + rng.normal(0, 0.5, (3, items))).ravel()
    fit = fit_dose_response(item_frame(y, n, steps), "continuous", steps=steps, models=("log1p_dose",))
    slope = term(fit, "log1p_dose", "log1p(dose)")
    assert slope["n_obs"] == 3 * items and slope["n_clusters"] == items and slope["n_steps"] == 3
    assert set(fit["term"]) == {"Intercept", "log1p(dose)"}  # step effects are not reported

    # Hand-built cluster sandwich with statsmodels' small-sample factor G/(G-1) (N-1)/(N-K).
    X = np.column_stack([np.ones(3 * items), np.tile(x, 3),
                         np.repeat([1.0, 0, 0], items), np.repeat([0, 1.0, 0], items)])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    e = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    scores = np.zeros((items, 4))
    np.add.at(scores, np.tile(np.arange(items), 3), X * e[:, None])
    N, K, G = 3 * items, 4, items
    cov = bread @ scores.T @ scores @ bread * G / (G - 1) * (N - 1) / (N - K)
    assert slope["estimate"] == pytest.approx(beta[1])
    assert slope["se"] == pytest.approx(math.sqrt(cov[1, 1]))
    # intercept refers to the final step
    assert term(fit, "log1p_dose", "Intercept")["estimate"] == pytest.approx(beta[0])


def test_default_uses_only_the_last_step():
    y = np.r_[np.zeros(20), np.ones(20)]
    frame = item_frame(np.r_[y, y[::-1]], 10, steps=(1, 2))
    fit = fit_dose_response(frame, "continuous", models=("log1p_dose",))
    assert (fit["n_obs"] == 40).all() and (fit["n_steps"] == 1).all()


def test_perfect_separation_withholds_inference():
    y = (np.repeat(DOSES, 20) > 0).astype(float)
    fit = fit_dose_response(item_frame(y, 20), "binary")
    assert fit["p"].isna().all() and fit["note"].str.contains("separation").all()


def test_single_dose_gives_a_note_not_an_error():
    frame = item_frame(np.zeros(80), 20).assign(dose=4)
    fit = fit_dose_response(frame, "continuous")
    assert fit["p"].isna().all() and fit["note"].eq("fewer than 2 distinct doses").all()


def test_predict_is_the_fitted_glms_own_and_recovers_a_binomial_rate():
    n = 200
    rates = expit(-1.0 + 0.8 * np.log1p(np.array(DOSES, dtype=float)))
    counts = np.round(rates * n).astype(int)
    y = np.concatenate([np.r_[np.ones(c), np.zeros(n - c)] for c in counts])
    frame = item_frame(y, n).assign(experiment="e", outcome="correct")
    spec = ExperimentSpec(name="e", control_arm=None, outcomes=(OutcomeSpec("correct", "binary", primary=True),))
    fits = DoseResponse.fit(frame, [spec], models=("log1p_dose",))
    glm = fits.results("e", "correct")
    assert glm.predict(np.array([[1.0, np.log1p(4.0)]])) == pytest.approx(fits.predict("e", "correct", [4]))
    intercept, slope = glm.params
    assert fits.predict("e", "correct", DOSES) == pytest.approx(expit(intercept + slope * np.log1p(DOSES)))
    assert fits.predict("e", "correct", DOSES) == pytest.approx(counts / n, abs=0.02)
    curve = fits.curves(frame, points=5)
    assert curve["dose"].iloc[[0, -1]].tolist() == pytest.approx([0, max(DOSES)])


def test_dose_response_table_covers_each_outcome(two_experiments):
    frame, specs = two_experiments
    table = dose_response_table(frame, specs, models=("log1p_dose",))
    assert set(zip(table["experiment"], table["outcome"])) == {
        ("contam", "correct"), ("contam", "margin"), ("canary", "loss")}


def test_slope_false_positive_rate_with_repeated_checkpoints():
    """Simulation: correlated checkpoints under the null; cluster SEs must keep the size."""
    rng = np.random.default_rng(9)
    replicates, n, steps = 150, 20, (1, 2, 3)
    items = 4 * n
    frame = item_frame(np.zeros(3 * items), n, steps)
    rejected = []
    for _ in range(replicates):
        y = (rng.normal(0, 1, items) + rng.normal(0, 1, (3, items))).ravel()
        fit = fit_dose_response(frame.assign(value=y), "continuous", steps=steps, models=("log1p_dose",))
        rejected.append(term(fit, "log1p_dose", "log1p(dose)")["p"] < 0.05)
    fpr = np.mean(rejected)
    assert abs(fpr - 0.05) <= 3.2 * math.sqrt(0.05 * 0.95 / replicates)
