"""MemP on a tiny model: inserted canaries are detected by loss, AUC, TPR at 1% FPR and exposure."""

import json
import math

import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.planning import Plan


@pytest.mark.slow
def test_inserted_canaries_are_detected_by_every_membership_estimator(tmp_path, tiny_corpus, capsys, one_torch_thread):
    design = tiny_design(tiny_corpus, **{"run.steps": 40, "run.training.checkpoints": [40], "run.training.save_initial": False})
    design["run"]["training"]["learning_rate"] = 3e-3
    design["experiments"] = [{
        "name": "memp", "kind": "canary", "stratify_by": "stratum", "params": {"prefix_tokens": 4},
        "items": {"generate": {"n": 12, "lengths": [12, 24], "types": ["random", "rare"]}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x8": {"dose": 8, "share": 0.5}},
    }]
    plan, run, report = tmp_path / "plan", tmp_path / "run", tmp_path / "report"
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(plan)]) == 0
    assert main(["train", str(plan), "--out", str(run), "--accelerator", "cpu", "--quiet"]) == 0
    assert main(["analyze", str(run), "--out", str(report), "--quiet"]) == 0
    capsys.readouterr()
    effects = pd.read_parquet(report / "effects.parquet")
    final = effects[(effects["experiment"] == "memp") & (effects["step"] == 40)].set_index(["outcome", "comparison"])
    vs = "vs_control"
    assert final.loc[("loss", vs), "estimate"] < 0 and final.loc[("loss", vs), "p"] < 0.01
    assert final.loc[("membership_auc", vs), "estimate"] > 0.8 and final.loc[("membership_auc", vs), "p"] < 0.01
    assert final.loc[("membership_tpr", vs), "p"] < 0.01 and final.loc[("membership_tpr", vs), "ci_low"] > 0
    assert final.loc[("exposure", vs), "estimate"] > 1 and final.loc[("exposure", vs), "p"] < 0.01
    by_stratum = final.loc["loss_by_stratum"]
    assert len(by_stratum) == 4 and (by_stratum["estimate"] < 0).all()  # rare/random × 12/24 tokens
    assert "Effects by stratum" in (report / "report.md").read_text()

    # least-likely canaries of the trained checkpoint, written for the torch-free planner
    checkpoint = run / "checkpoints" / "step-00000040"
    ll = tmp_path / "ll.jsonl"
    assert main(["canaries", "--from-checkpoint", str(checkpoint), "--out", str(ll), "--n", "6", "--length", "4,12", "--seed", "1"]) == 0
    records = [json.loads(line) for line in ll.read_text().splitlines()]
    assert sorted(len(r["tokens"]) for r in records) == [4] * 6 + [12] * 6 and {r["type"] for r in records} == {"least_likely"}
    assert len({tuple(r["tokens"]) for r in records}) == 12
    # each token is among the model's 16 least likely of ~512: far below a uniform guess's log-prob
    assert max(r["logprob_per_token"] for r in records) < -math.log(512) - 1
    assert main(["canaries", "--from-checkpoint", str(checkpoint), "--out", str(ll)]) == 2  # never replaces a file
    assert main(["canaries", "--from-checkpoint", str(tmp_path), "--out", str(tmp_path / "x.jsonl")]) == 2
    capsys.readouterr()
    design["experiments"][0]["items"]["generate"] = {"n": 6, "lengths": [12], "types": [], "least_likely": "ll.jsonl"}
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(tmp_path / "plan2")]) == 0
    items = Plan.open(tmp_path / "plan2").items()
    assert set(items["stratum"]) == {"least_likely/L12/none"} and len(items) == 6
