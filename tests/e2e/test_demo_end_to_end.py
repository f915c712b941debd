"""The demo at test scale, end to end through the CLI: prepare → plan → train → analyze."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from designkit.cli import main

SMALL_DEMO = Path(__file__).with_name("small_demo.yaml")


@pytest.mark.slow
def test_small_demo_detects_contamination_and_canaries_but_not_the_placebo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--design", str(SMALL_DEMO), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and "timings:" in printed

    results = json.loads((out / "report" / "results.json").read_text())
    verdicts = pd.DataFrame(results["verdicts"]).set_index(["experiment", "arm"])
    assert verdicts.loc[("bench", "x16"), "p_adj"] < 0.01
    assert verdicts.loc[("canary", "x8"), "p_adj"] < 0.01
    assert verdicts.loc[("canary", "x8"), "estimate"] < 0  # memorized canaries have lower loss
    assert verdicts.loc[("placebo", "x8"), "p_adj"] > 0.05
    assert not results["red_flags"]
    assert results["identity"]["applied_log"]["agrees"]

    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # dose-response, over training, forest, loss
    assert not re.search(r'(src|href)="https?://', html), "the report must be self-contained"
    metrics = pd.read_csv(out / "run" / "metrics.csv")
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0] - 1.0
