"""Items with several payloads and probe instances through the whole chain: plan → train (each
paraphrase written where its placement says, the applied log checking each payload's tokens)
→ score (one row per probe instance) → analyze (instances averaged to the item, which is the
unit tested; the report says so)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.planning import Plan

KINDS = "plugins.multi_payload_kinds"


@pytest.mark.slow
def test_paraphrases_train_score_per_instance_and_analyze_per_item(tmp_path, tiny_corpus, capsys):
    design = tiny_design(tiny_corpus, **{"run.steps": 24, "run.training.checkpoints": [24], "run.training.save_initial": False})
    design["experiments"] = [{
        "name": "facts", "kind": f"{KINDS}:KeyedFacts", "items": {"generate": {"n": 24, "paraphrases": 3}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x6": {"dose": 6, "share": 0.5}},
    }, {
        # templated texts: the controls share the treated notes' long template (spillover, warned about)
        "name": "notes", "kind": f"{KINDS}:TemplatedNotes", "items": {"generate": {"n": 6}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}},
    }]
    plan_dir, run, report = tmp_path / "plan", tmp_path / "run", tmp_path / "report"
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(plan_dir)]) == 0
    assert "warning: spillover (13-grams), experiment notes: 3 of 3 control items" in capsys.readouterr().out
    assert main(["train", str(plan_dir), "--out", str(run), "--accelerator", "cpu", "--quiet"]) == 0
    assert main(["analyze", str(run), "--out", str(report), "--quiet"]) == 0
    capsys.readouterr()

    plan = Plan.open(plan_dir)
    placements, payloads = plan.placements(), plan.payloads()
    applied = pd.read_parquet(run / "applied.parquet")  # train already refused a log whose checksums differ
    key = ["global_seq", "offset", "item_index", "payload_index"]
    assert sorted(map(tuple, applied[key].to_numpy())) == sorted(map(tuple, placements[key].to_numpy()))
    facts = plan.items()[plan.items()["experiment"] == "facts"]
    trained = payloads.loc[applied["payload_index"].unique(), "item_index"]
    assert trained.isin(facts["item_index"]).sum() == 3 * int(facts["inserted"].sum())  # every paraphrase trained

    scores = pd.read_parquet(run / "scores" / "step-00000024.parquet")
    per_item = scores[(scores["probe"] == "value")].groupby("item_index")["instance"].apply(sorted)
    assert len(per_item) == 24 and all(v == [0, 1, 2] for v in per_item)

    results = json.loads((report / "results.json").read_text())
    assert results["identity"]["applied_log"]["agrees"]
    effects = pd.read_parquet(report / "effects.parquet")
    final = effects[(effects["step"] == 24) & (effects["comparison"] == "vs_control") & (effects["experiment"] == "facts")].set_index("outcome")
    # the item is the unit: 12 treated and 12 control facts, not 36 and 36 instances
    assert final.loc["value_logprob", ["n_treated", "n_control"]].tolist() == [12, 12]
    # a binary outcome averaged over 3 instances is a proportion per item: tested by Welch, not Newcombe
    assert final.loc["first_token", "estimator"] == "welch"
    assert final.loc["value_logprob", "estimate"] > 0 and final.loc["value_logprob", "p"] < 0.01
    (section,) = [s for s in results["sections"] if s["title"] == "Probe instances"]
    assert {(r["experiment"], r["outcome"]) for r in section["rows"]} == {("facts", "value_logprob"), ("facts", "first_token")}
    assert all("averaged to the item" in r["test"] for r in section["rows"])
    markdown = (report / "report.md").read_text()
    assert "## Probe instances" in markdown
    # the report names the experiment with spillover, and only it
    (warning,) = results["warnings"]
    assert warning.startswith("notes: 3 control items share a 13-gram") and f"> **Warning (spillover):** {warning}" in markdown
    assert "Warning (spillover): notes:" in (report / "report.html").read_text()
    # the item's value is the mean of its instances
    frame_value = final.loc["value_logprob", "treated_mean"]
    treated = plan.items().loc[plan.items()["arm"] == "x6", "item_index"]
    rows = scores[(scores["probe"] == "value") & scores["item_index"].isin(treated)]
    assert np.isclose(rows.groupby("item_index")["logprob_per_token"].mean().mean(), frame_value)
