"""The design's `analysis:` block holds every option the README names, and the strings the
plan and the report print are built from the values in force."""

from __future__ import annotations

import copy
import json

from tiny_designs import tiny_design

from designkit.analysis import AnalysisOptions
from designkit.design import design_to_dict, parse_design
from designkit.planning.planfile import Plan
from designkit.planning.summary import format_summary

OPTIONS = {"alpha": 0.01, "power": 0.9, "multiplicity": "fdr_bh", "continuous_method": "bootstrap",
           "equivalence_margin": 0.3}


def test_every_analysis_option_is_settable_and_reaches_the_analysis(tiny_corpus, tmp_path):
    design = tiny_design(tiny_corpus)
    design["analysis"] = dict(OPTIONS)
    parsed = parse_design(design, tmp_path / "design.yaml")
    assert {k: getattr(parsed.analysis, k) for k in OPTIONS} == OPTIONS
    options = AnalysisOptions.from_plan({"design": design_to_dict(parsed)})
    assert {k: getattr(options, k) for k in OPTIONS} == OPTIONS
    assert options.adjustment_name == "BH-adjusted (FDR)" and options.ci_label == "99% CI"


def test_defaults_and_plans_written_with_the_old_power_block():
    assert AnalysisOptions.from_plan({}) == AnalysisOptions(alpha=0.05, power=0.8, multiplicity="holm",
                                                           continuous_method="welch")
    old = AnalysisOptions.from_plan({"design": {"power": {"alpha": 0.05, "power": 0.9}, "analysis": {"alpha": 0.1}}})
    assert (old.alpha, old.power) == (0.1, 0.9)


def test_plan_summary_states_the_alpha_and_power_of_its_mdes(tiny_plan):
    meta = copy.deepcopy(Plan.open(tiny_plan).meta)
    assert "MDE (α=0.05, power 0.8)" in format_summary(meta, "0" * 64)
    meta["design"]["analysis"].update(alpha=0.01, power=0.9)
    text = format_summary(json.loads(json.dumps(meta)), "0" * 64)
    assert "MDE (α=0.01, power 0.9)" in text and "α=0.05" not in text
