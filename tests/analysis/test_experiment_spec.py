"""Experiment specs from plan.json entries."""

from __future__ import annotations

import pytest

from designkit.analysis import ExperimentSpec, OutcomeSpec


def test_from_plan_reads_arms_windows_and_outcomes():
    spec = ExperimentSpec.from_plan({
        "name": "contam", "kind": "contamination", "placebo": False, "control_arm": "control",
        "arms": {"control": {"dose": 0, "share": 0.5, "n_items": 10, "inserted": False, "window": None},
                 "x4": {"dose": 4, "share": 0.5, "n_items": 10, "inserted": True, "window": [0.0, 0.5]}},
        "outcomes": [{"name": "acc", "probe": "mc", "column": "correct", "type": "binary",
                      "primary": True, "expected_sign": 1, "baseline": 0.25}],
    })
    assert spec.primary_outcome.baseline == 0.25 and spec.outcome("acc").column == "correct"
    assert [(a.name, a.dose, a.inserted, a.window) for a in spec.arms] == [
        ("control", 0, False, None), ("x4", 4, True, (0.0, 0.5))]


def test_exactly_one_primary_outcome_is_required():
    with pytest.raises(ValueError, match="exactly one primary"):
        ExperimentSpec("e", "c", (OutcomeSpec("a", "binary"), OutcomeSpec("b", "binary")))


def test_unknown_outcome_type_is_rejected():
    with pytest.raises(ValueError, match="type"):
        OutcomeSpec("a", "ordinal")  # type: ignore[arg-type]
