"""``designkit demo --reference``: the reference run (only the placebos, nothing edited) is trained
too, and the report shows the run's training loss beside it."""

from __future__ import annotations

import json

import pandas as pd
from tiny_designs import tiny_design, write_design

from designkit.cli import main


def test_demo_with_reference_reports_the_loss_beside_the_same_run_without_experiments(tmp_path, tiny_corpus, capsys):
    design = tiny_design(tiny_corpus, **{"run.steps": 20})
    design["experiments"].append({
        "name": "placebo", "kind": "canary", "placebo": True, "items": {"generate": {"n": 12, "length": 16}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x3": {"dose": 3, "share": 0.5}}, "params": {"prefix_tokens": 4},
    })
    out = tmp_path / "demo"
    assert main(["demo", "--design", str(write_design(tmp_path / "d.yaml", design)), "--out", str(out), "--reference", "--quiet"]) == 0
    capsys.readouterr()
    reference = json.loads((out / "reference-plan" / "plan.json").read_text())
    assert [e["name"] for e in reference["experiments"]] == ["placebo"] and reference["budget"]["injected_tokens"] == 0
    doc = json.loads((out / "report" / "results.json").read_text())
    rows = {r["measure"]: r for r in doc["baseline_loss"]["rows"]}
    run, ref = pd.read_csv(out / "run" / "metrics.csv"), pd.read_csv(out / "reference-run" / "metrics.csv")
    last = rows["last logged loss"]
    assert last["with_experiments"] == run["loss"].iloc[-1] and last["without_experiments"] == ref["loss"].iloc[-1]
    # the same seed and data: the first logged loss differs only by the first steps' insertions
    assert abs(run["loss"].iloc[0] - ref["loss"].iloc[0]) < 0.5


def test_reference_without_a_placebo_is_refused_before_anything_is_written(tmp_path, tiny_corpus, capsys):
    design = write_design(tmp_path / "d.yaml", tiny_design(tiny_corpus))
    assert main(["demo", "--design", str(design), "--out", str(tmp_path / "demo"), "--reference", "--quiet"]) == 2
    assert "placebo" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
