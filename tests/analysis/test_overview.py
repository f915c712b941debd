"""The report opens with a one-screen overview (every experiment's primary effect, CI, verdict
and share of the run) and, given a reference run without experiments, the loss beside it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from designkit.analysis.report import analyze_run
from designkit.errors import InputError
from designkit.planning import make_plan
from tiny_designs import write_design

from .test_report_fabricated_run import make_run, plan_meta, report_design, report_plan_dir

LOSS_GAP = 0.01


@pytest.fixture(scope="module")
def plans(tiny_corpus, tmp_path_factory):
    """The report design's plan, and its reference: the same design with only its placebo (nothing edited)."""
    root = tmp_path_factory.mktemp("overview")
    reference = report_design(tiny_corpus)
    reference["experiments"] = [e for e in reference["experiments"] if e.get("placebo")]
    reference_plan = make_plan(write_design(root / "reference.yaml", reference), root / "reference-plan", show_progress=False).path
    other_seed = {**reference, "seed": reference["seed"] + 1}
    other_plan = make_plan(write_design(root / "other.yaml", other_seed), root / "other-plan", show_progress=False).path
    return report_plan_dir(tiny_corpus, tmp_path_factory.getbasetemp() / "report-plan"), reference_plan, other_plan


def _reference_run(path, plan_dir):
    run = make_run(path, plan_dir)
    metrics = pd.read_csv(run / "metrics.csv")
    metrics["loss"] -= LOSS_GAP  # the experiments' run is LOSS_GAP nats worse at every step
    metrics.to_csv(run / "metrics.csv", index=False)
    return run


def test_overview_opens_the_report_with_every_experiment_and_its_share_of_the_run(plans, tmp_path):
    plan_dir, reference_plan, _ = plans
    report = analyze_run(make_run(tmp_path / "run", plan_dir), tmp_path / "report",
                         baseline_run=_reference_run(tmp_path / "run0", reference_plan))  # fmt: skip
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.index("## Overview") < md.index("## Confirmatory results")
    overview = md[md.index("## Overview"): md.index("## Confirmatory results")]
    for name in ("bench", "canary", "placebo (placebo)", "all experiments", "share of run", "null, as expected"):
        assert name in overview
    doc = json.loads((tmp_path / "report" / "results.json").read_text())
    rows = {r["experiment"]: r for r in doc["overview"]}
    budget = plan_meta(plan_dir)["budget"]
    for name in ("bench", "canary"):
        spent = sum(r["share_of_run"] for r in budget["rows"] if r["experiment"] == name)
        assert rows[name]["share_of_run"] == pytest.approx(spent) and spent > 0
    assert rows["placebo (placebo)"]["share_of_run"] == 0
    assert rows["all experiments"]["share_of_run"] == pytest.approx(budget["injected_fraction"])
    # the primary effect shown is the largest-dose arm's confirmatory row
    verdicts = report.results.verdicts
    bench = verdicts[(verdicts["experiment"] == "bench") & (verdicts["arm"] == "x6")].iloc[0]
    assert rows["bench"]["estimate"] == pytest.approx(bench["estimate"]) and rows["bench"]["arm"] == "x6 (dose 6)"
    # the loss beside the reference run: LOSS_GAP at every measure
    loss = doc["baseline_loss"]["rows"]
    assert len(loss) == 3 and all(r["difference"] == pytest.approx(LOSS_GAP) for r in loss)
    assert "reference run with the same seed and no experiments" in overview


def test_overview_without_a_reference_has_no_loss_table(plans, tmp_path):
    plan_dir, _, _ = plans
    analyze_run(make_run(tmp_path / "run", plan_dir), tmp_path / "report")
    doc = json.loads((tmp_path / "report" / "results.json").read_text())
    assert doc["baseline_loss"] is None and len(doc["overview"]) == 4
    assert "reference run" not in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize("which, key", [("experiments", "budget"), ("other_seed", "seed")])
def test_a_reference_with_experiments_or_another_seed_is_refused(plans, tmp_path, which, key):
    plan_dir, _, other_plan = plans
    reference = make_run(tmp_path / "run0", plan_dir if which == "experiments" else other_plan)
    with pytest.raises(InputError) as refused:
        analyze_run(make_run(tmp_path / "run", plan_dir), tmp_path / "report", baseline_run=reference)
    assert refused.value.field == key
    assert not (tmp_path / "report").exists()
