"""MemP on a tiny model: inserted canaries are detected by loss, AUC, TPR at 1% FPR and exposure."""

import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main


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
