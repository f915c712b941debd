"""Every example design in designs/ plans: no leakage or spillover refusal, a budget within its
limit. paper-ten needs a corpus on the command line and has its own test (tests/planning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from designkit.planning import make_plan

DESIGNS = Path(__file__).resolve().parents[1] / "designs"
EXAMPLES = sorted(path.name for path in DESIGNS.glob("*.yaml") if path.name != "paper-ten.yaml")


def test_the_example_designs_include_the_engine_kinds_and_insertions_designs():
    assert {"engine-kinds-cpu.yaml", "insertions-cpu.yaml"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_design_plans_within_its_injection_limit(name, tmp_path):
    design = yaml.safe_load((DESIGNS / name).read_text())
    # the leakage scan of a corpus prefix keeps this fast; the design is otherwise planned as shipped
    design["leakage"] = {**design.get("leakage", {}), "max_corpus_tokens": 20000}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(design, sort_keys=False))
    make_plan(path, tmp_path / "plan", show_progress=False)
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    budget = plan["budget"]
    assert 0 < budget["injected_fraction"] + budget["edited_sequence_fraction"]
    assert budget["injected_fraction"] <= budget["max_injected_fraction"] == design["run"]["max_injected_fraction"]
    assert {row["experiment"] for row in budget["rows"]} == {e["name"] for e in design["experiments"]}
