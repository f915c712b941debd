"""plan.json's records have one definition (designkit.plan_types) that reads back what it writes."""

from __future__ import annotations

import json

import pytest

from designkit import plan_types
from designkit.planning import Plan


def test_every_plan_record_reads_back_to_the_same_json(tiny_plan):
    meta = json.loads((tiny_plan / "plan.json").read_text())
    plan = Plan.open(tiny_plan)
    assert [e.to_json() for e in plan.experiment_specs] == meta["experiments"]
    assert plan.geometry.to_json() == meta["geometry"]
    assert plan.corpus_info.to_json() == meta["corpus"]
    assert plan.model_info.to_json() == meta["model"]
    assert plan.training.to_json() == meta["training"]


def test_experiment_spec_exposes_arms_probes_and_the_primary_outcome(tiny_plan):
    spec = Plan.open(tiny_plan).experiment_specs[0]
    assert spec.primary_outcome is not None and spec.primary_outcome.primary
    assert spec.arm(spec.control_arm).dose == 0
    assert sum(a.n_items for a in spec.arms) > 0
    assert all(isinstance(p, plan_types.ProbeSpec) and p.type for p in spec.probes)


def test_records_refuse_what_the_format_forbids():
    with pytest.raises(ValueError, match="exactly one primary"):
        plan_types.ExperimentSpec("e", None, (plan_types.OutcomeSpec("a", "binary", primary=True), plan_types.OutcomeSpec("b", "binary", primary=True)))
    with pytest.raises(ValueError, match="expected_sign"):
        plan_types.OutcomeSpec("a", "binary", expected_sign=0)
