"""Effects across checkpoints and early-vs-late window contrasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from designkit.analysis import (
    ArmSpec,
    ExperimentSpec,
    OutcomeSpec,
    adjust,
    compare_binary,
    compare_continuous,
    effects_over_training,
    effects_table,
    window_contrast,
    window_contrasts_table,
    window_pairs,
)

from .frames import long_frame

SPEC = ExperimentSpec(
    name="contam",
    control_arm="control",
    outcomes=(OutcomeSpec("correct", "binary", primary=True), OutcomeSpec("margin", "continuous")),
    arms=(
        ArmSpec("control", 0, False),
        ArmSpec("x4_early", 4, True, (0.0, 0.25)),
        ArmSpec("x4_late", 4, True, (0.75, 1.0)),
        ArmSpec("x16", 16, True),
    ),
)


@pytest.fixture
def window_frame():
    rng = np.random.default_rng(4)
    arms = {"control": (0, False), "x4_early": (4, True), "x4_late": (4, True), "x16": (16, True)}
    rates = {"control": .25, "x4_early": .3, "x4_late": .6, "x16": .8}
    correct = {a: rng.random((3, 60)) < p for a, p in rates.items()}
    margin = {a: rng.normal(p, 1, (3, 60)) for a, p in rates.items()}
    return long_frame("contam", arms, {"correct": correct, "margin": margin}, (10, 20, 30))


def test_window_pairs_match_equal_dose_different_window():
    assert window_pairs(SPEC) == [("x4_early", "x4_late")]


def test_window_pairs_order_by_window_start_and_treat_none_as_whole_run():
    spec = ExperimentSpec("e", "c", (OutcomeSpec("y", "binary", primary=True),), arms=(
        ArmSpec("c", 0, False), ArmSpec("late", 2, True, (0.5, 1.0)), ArmSpec("all", 2, True, None)))
    assert window_pairs(spec) == [("all", "late")]


def test_window_contrast_is_late_minus_early_two_sample_comparison(window_frame):
    effect = window_contrast(window_frame, SPEC, "correct", "x4_early", "x4_late")
    at_final = window_frame.query("outcome == 'correct' and step == 30")
    expected = compare_binary(at_final.query("arm == 'x4_late'")["value"],
                              at_final.query("arm == 'x4_early'")["value"])
    assert effect.estimate == pytest.approx(expected.estimate) and effect.p == pytest.approx(expected.p)
    assert (effect.arm, effect.control_arm, effect.step, effect.dose) == ("x4_late", "x4_early", 30, 4)
    assert effect.comparison == "window_contrast" and effect.family == "exploratory"
    assert effect.method.startswith("window_contrast")


def test_continuous_window_contrast_uses_welch(window_frame):
    effect = window_contrast(window_frame, SPEC, "margin", "x4_early", "x4_late", step=20)
    at_step = window_frame.query("outcome == 'margin' and step == 20")
    expected = compare_continuous(at_step.query("arm == 'x4_late'")["value"],
                                  at_step.query("arm == 'x4_early'")["value"])
    assert effect.ci_low == pytest.approx(expected.ci_low) and "welch" in effect.method


def test_window_contrasts_join_the_exploratory_family(window_frame):
    contrasts = window_contrasts_table(window_frame, [SPEC])
    assert len(contrasts) == 2  # two outcomes, one pair, final step
    table = pd.concat([effects_table(window_frame, [SPEC]), contrasts], ignore_index=True)
    adjusted = adjust(table.assign(family=""), "holm")
    assert (adjusted.loc[adjusted["comparison"] == "window_contrast", "family"] == "exploratory").all()
    assert (adjusted["family"] == "confirmatory").sum() == 3


def test_effects_over_training_orders_checkpoints(window_frame):
    table = effects_over_training(window_frame, [SPEC])
    series = table.query("arm == 'x16' and outcome == 'correct'")
    assert series["step"].tolist() == [10, 20, 30]
