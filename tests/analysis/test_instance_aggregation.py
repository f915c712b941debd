"""Probe instances are aggregated to their item (the cluster) before testing, or modelled with
errors clustered by item; the report says which, and names experiments with spillover."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from designkit.analysis.cluster_robust import cluster_robust_difference
from designkit.analysis.estimator import effects_table
from designkit.analysis.options import AnalysisOptions
from designkit.analysis.outcome_frame import long_outcome_frame
from designkit.analysis.results import instance_sections, spillover_warnings
from designkit.plan_types import ArmSpec, ExperimentSpec, OutcomeSpec


def _spec(aggregate: str = "mean", outcome_type: str = "binary") -> ExperimentSpec:
    return ExperimentSpec(
        name="mr", control_arm="control", kind="reasoning",
        arms=(ArmSpec("control", 0, False), ArmSpec("x4", 4, True)),
        outcomes=(OutcomeSpec("correct", outcome_type, primary=True, probe="p", column="correct", aggregate=aggregate),),
    )


def _data(rng, n_items=20, n_instances=5, shift=0.0, item_sd=1.0):
    """Items in two arms, each with instances sharing an item effect (a strongly clustered outcome)."""
    items = pd.DataFrame({"item_index": np.arange(2 * n_items), "arm": ["control"] * n_items + ["x4"] * n_items,
                          "dose": [0] * n_items + [4] * n_items, "inserted": [False] * n_items + [True] * n_items})
    effect = rng.normal(0, item_sd, 2 * n_items) + np.where(items["inserted"], shift, 0.0)
    rows = [(i, j, effect[i] + rng.normal(0, 0.3)) for i in range(2 * n_items) for j in range(n_instances)]
    scores = pd.DataFrame(rows, columns=["item_index", "instance", "value"])
    return items, scores.assign(experiment="mr", probe="p", step=10, item_id="x")


def test_instances_are_averaged_to_their_item_and_binary_items_become_proportions():
    items = pd.DataFrame({"item_index": [0, 1], "arm": ["control", "x4"], "dose": [0, 4], "inserted": [False, True]})
    scores = pd.DataFrame({"item_index": [0, 0, 0, 1, 1, 1], "instance": [0, 1, 2, 0, 1, 2], "experiment": "mr",
                           "probe": "p", "step": 5, "correct": [True, False, False, True, True, np.nan]})
    frame = long_outcome_frame(items, scores, [_spec()])
    assert frame.set_index("item_index")["value"].tolist() == pytest.approx([1 / 3, 1.0])
    assert frame["n_instances"].tolist() == [3, 2]  # a missing instance score is not a zero
    raw = long_outcome_frame(items, scores, [_spec()], instances=True)
    assert len(raw) == 6 and raw["instance"].tolist() == [0, 1, 2, 0, 1, 2]


def test_a_binary_outcome_with_several_instances_is_tested_on_item_proportions_and_the_report_says_so():
    rng = np.random.default_rng(0)
    items, scores = _data(rng)
    scores["correct"] = scores["value"] > 0
    frame = long_outcome_frame(items, scores, [_spec()])
    effects = effects_table(frame, [_spec()], AnalysisOptions())
    (row,) = effects.itertuples()
    assert row.estimator == "welch" and (row.n_treated, row.n_control) == (20, 20)
    by_arm = frame.groupby("arm")["value"].mean()
    assert row.estimate == pytest.approx(by_arm["x4"] - by_arm["control"])
    (section,) = instance_sections(frame, [_spec()], AnalysisOptions())
    assert section.title == "Probe instances"
    assert "averaged to the item's proportion, which welch tests" in section.table["test"].iloc[0]
    # one instance per item: no section, and binary outcomes keep Newcombe
    single = long_outcome_frame(items, scores[scores["instance"] == 0], [_spec()])
    assert instance_sections(single, [_spec()], AnalysisOptions()) == []
    assert effects_table(single, [_spec()], AnalysisOptions())["estimator"].tolist() == ["newcombe"]


def test_cluster_robust_standard_error_is_the_cr1_sandwich_of_the_mean_difference():
    rng = np.random.default_rng(1)
    cluster = np.repeat(np.arange(9), [3, 1, 4, 2, 2, 3, 5, 1, 2])
    treated = cluster >= 4
    values = rng.normal(size=len(cluster)) + cluster * 0.3
    result = cluster_robust_difference(values, treated, cluster, alpha=0.05)
    mean_t, mean_c = values[treated].mean(), values[~treated].mean()
    residual = values - np.where(treated, mean_t, mean_c)
    n_t, n_c, n, g = treated.sum(), (~treated).sum(), len(values), 9
    sums = pd.Series(residual).groupby(cluster).sum().to_numpy()
    arm_of_cluster = np.array([treated[cluster == c][0] for c in range(g)])
    meat = (sums[arm_of_cluster] ** 2).sum() / n_t**2 + (sums[~arm_of_cluster] ** 2).sum() / n_c**2
    se = np.sqrt(g / (g - 1) * (n - 1) / (n - 2) * meat)
    t = (mean_t - mean_c) / se
    assert result.estimate == pytest.approx(mean_t - mean_c)
    assert result.p == pytest.approx(2 * stats.t.sf(abs(t), g - 1))
    half = stats.t.ppf(0.975, g - 1) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((mean_t - mean_c - half, mean_t - mean_c + half))
    assert (result.n_treated, result.n_control) == (5, 4)


def test_cluster_robust_keeps_its_error_rate_where_instances_counted_as_items_do_not():
    rng = np.random.default_rng(2)
    robust, naive = [], []
    for _ in range(300):
        items, scores = _data(rng, n_items=12, n_instances=6)
        rows = scores.merge(items, on="item_index")
        treated = rows["inserted"].to_numpy()
        robust.append(cluster_robust_difference(rows["value"].to_numpy(), treated, rows["item_index"].to_numpy(), 0.05).p)
        naive.append(stats.ttest_ind(rows["value"][treated], rows["value"][~treated], equal_var=False).pvalue)
    assert 0.02 <= np.mean(np.array(robust) < 0.05) <= 0.09
    assert np.mean(np.array(naive) < 0.05) > 0.2  # why instances must not be counted as independent items


def test_an_outcome_declared_cluster_robust_is_estimated_on_its_instances():
    rng = np.random.default_rng(3)
    items, scores = _data(rng, shift=2.0)
    spec = _spec("cluster_robust", "continuous")
    scores["correct"] = scores["value"]
    frame = long_outcome_frame(items, scores, [spec])
    instances = long_outcome_frame(items, scores, [spec], instances=True)
    (row,) = effects_table(frame, [spec], AnalysisOptions(), instances=instances).itertuples()
    assert row.estimator == "cluster_robust" and (row.n_treated, row.n_control) == (20, 20)
    assert row.p < 0.01 and row.estimate == pytest.approx(2.0, abs=0.8)
    (section,) = instance_sections(frame, [spec], AnalysisOptions())
    assert "clustered by item (cluster_robust)" in section.table["test"].iloc[0]


def test_the_report_warns_about_each_experiment_with_spillover():
    meta = {"spillover": {"ngram": 13, "experiments": [
        {"experiment": "notes", "controls": 5, "controls_exposed": 5, "example_pair": ["notes/a", "notes/b"]},
        {"experiment": "clean", "controls": 5, "controls_exposed": 0, "example_pair": None},
        {"experiment": "mr", "controls": 4, "controls_exposed": 0, "instances_overlapping": 2, "example_instance": "mr/t1 instance 0"},
    ]}}
    lines = spillover_warnings(meta)
    assert len(lines) == 2
    assert lines[0].startswith("notes: 5 control items share a 13-gram") and "notes/a and notes/b" in lines[0]
    assert lines[1].startswith("mr: 2 held-out probe instances")
    assert spillover_warnings({}) == []
