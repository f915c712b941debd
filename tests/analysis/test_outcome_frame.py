"""Building the long outcome frame from plan items and run scores."""

from __future__ import annotations

import pandas as pd
import pytest

from designkit.analysis import ExperimentSpec, OutcomeSpec, long_outcome_frame

SPEC = ExperimentSpec("mc", "control", (
    OutcomeSpec("correct", "binary", primary=True, probe="mc", column="correct"),
    OutcomeSpec("margin", "continuous", probe="mc", column="margin"),
))


def test_every_outcome_becomes_item_level_rows():
    items = pd.DataFrame({"item_index": [0, 1], "arm": ["control", "x1"], "dose": [0, 1],
                          "inserted": [False, True], "experiment": "mc"})
    scores = pd.DataFrame({"item_index": [0, 1, 0, 1], "experiment": "mc", "probe": "mc",
                           "step": [10, 10, 20, 20], "correct": [False, True, True, True],
                           "margin": [-0.5, 0.2, 0.1, 0.9]})
    frame = long_outcome_frame(items, scores, [SPEC])
    assert len(frame) == 8
    correct = frame.query("outcome == 'correct' and step == 10")
    assert correct["value"].tolist() == [0.0, 1.0] and correct["arm"].tolist() == ["control", "x1"]
    assert frame.query("outcome == 'margin' and step == 20")["value"].tolist() == [0.1, 0.9]


def test_missing_outcome_column_is_reported():
    items = pd.DataFrame({"item_index": [0], "arm": ["control"], "dose": [0], "inserted": [False]})
    scores = pd.DataFrame({"item_index": [0], "experiment": "mc", "probe": "mc", "step": [1],
                           "correct": [True]})
    with pytest.raises(ValueError, match="'margin'"):
        long_outcome_frame(items, scores, [SPEC])


def test_contrast_outcome_subtracts_the_other_probe_per_item_and_step():
    spec = ExperimentSpec("qa", "control", (
        OutcomeSpec("gold", "continuous", primary=True, probe="gold", column="logprob_per_token"),
        OutcomeSpec("recall", "continuous", probe="gold", column="logprob_per_token", minus_probe="unrelated"),
    ))
    items = pd.DataFrame({"item_index": [0, 1], "arm": ["control", "x4"], "dose": [0, 4], "inserted": [False, True]})
    scores = pd.DataFrame({
        "item_index": [0, 1, 1, 0], "experiment": "qa", "probe": ["gold", "gold", "unrelated", "unrelated"],
        "step": 5, "logprob_per_token": [-2.0, -1.0, -3.5, -2.25],
    })
    frame = long_outcome_frame(items, scores, [spec])
    recall = frame.query("outcome == 'recall'").sort_values("item_index")
    assert recall["value"].tolist() == [0.25, 2.5]
