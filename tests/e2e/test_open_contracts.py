"""Issue 8's acceptance: a kind, a probe type and an estimator written outside designkit, each
one file under tests/plugins/, registered through the entry points an installed package would
declare, run plan → train → score → analyze with nothing in src/engine/ or
src/designkit/analysis/ knowing them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.analysis.estimator import ESTIMATORS
from designkit.cli import main
from designkit.kinds import KINDS
from designkit.probes import PROBES

SRC = Path(__file__).resolve().parents[2] / "src"
ENTRY_POINTS = """\
[designkit.kinds]
toy_facts = plugins.toy_kind:ToyFacts

[designkit.probes]
toy_surprise = plugins.toy_probe:ToySurprise

[designkit.estimators]
toy_median_shift = plugins.toy_estimator:ToyMedianShift
"""


def install_toy_plugins(site: Path) -> None:
    """What `pip install` of a package declaring the three entry points leaves on sys.path."""
    info = site / "designkit_toy_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: designkit-toy-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


@pytest.mark.slow
def test_toy_kind_probe_and_estimator_plug_in_through_entry_points_end_to_end(tmp_path, tiny_corpus, monkeypatch, capsys):
    for registry, name in ((KINDS, "toy_facts"), (PROBES, "toy_surprise"), (ESTIMATORS, "toy_median_shift")):
        assert name not in registry  # nothing knows them before the package is "installed"
        # and nothing knows them after this test: the "uninstall" below restores the registries
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    install_toy_plugins(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    design = tiny_design(tiny_corpus, **{"run.steps": 30, "run.training.checkpoints": [30], "run.training.save_initial": False})
    design["experiments"] = [{"name": "kv", "kind": "toy_facts", "items": {"generate": {"n": 40}},
                              "arms": {"control": {"dose": 0, "share": 0.5}, "x8": {"dose": 8, "share": 0.5}}}]
    plan, run, report = tmp_path / "plan", tmp_path / "run", tmp_path / "report"
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(plan)]) == 0
    assert main(["train", str(plan), "--out", str(run), "--accelerator", "cpu", "--quiet"]) == 0
    assert main(["analyze", str(run), "--out", str(report), "--quiet"]) == 0  # scores, then analyzes
    capsys.readouterr()

    plan_json = json.loads((plan / "plan.json").read_text())
    (experiment,) = plan_json["experiments"]
    assert experiment["kind"] == "toy_facts" and experiment["probes"][0]["type"] == "toy_surprise"
    assert experiment["outcomes"][0]["estimator"] == "toy_median_shift"
    scores = pd.read_parquet(run / "scores" / "step-00000030.parquet")
    assert len(scores) == 40 and scores["surprise_bits"].gt(0).all()  # the toy probe's own column

    effects = pd.read_parquet(report / "effects.parquet")
    mine = effects[(effects["experiment"] == "kv") & (effects["step"] == 30)]
    assert mine["estimator"].tolist() == ["toy_median_shift"] and mine["method"].tolist() == ["median_shift+mann_whitney"]
    row = mine.iloc[0]
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"] and 0 <= row["p"] <= 1 and row["family"] == "confirmatory"
    results = json.loads((report / "results.json").read_text())
    assert results["identity"]["applied_log"]["agrees"]
    assert " facts" in (report / "report.md").read_text()  # the kind's own item noun

    # nothing in the engine or the analysis was written for them
    for tree in (SRC / "engine", SRC / "designkit" / "analysis"):
        for source in tree.rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            assert not any(n in text for n in ("toy_facts", "toy_surprise", "toy_median_shift", "ToyFacts")), source
