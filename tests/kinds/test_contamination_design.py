"""BC, the paper's design: OLMES multiple-choice accuracy as the primary outcome, an
early-window arm at equal dose for forgetting, a text-only file's caveat, bad files refused."""

import json

import numpy as np
import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.kinds.names import invented_names


def _olmes_mc(path, n, seed=0):
    rng = np.random.default_rng(seed)
    places, answers = invented_names(n, rng), invented_names(4 * n, rng)
    lines = []
    for i, place in enumerate(places):
        gold = int(rng.integers(4))
        lines.append(json.dumps({"id": f"q{i}", "query": f"Who keeps {place}?\nAnswer:",
                                 "choices": answers[4 * i : 4 * i + 4], "gold": gold}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_contaminated_questions_are_answered_and_the_early_window_is_contrasted(tmp_path, tiny_corpus, capsys, one_torch_thread):
    design = tiny_design(tiny_corpus, **{"run.steps": 100, "run.training.checkpoints": [100], "run.training.save_initial": False})
    design["run"]["training"].update(learning_rate=3e-3, min_lr=2e-3)  # late insertions learn as much as early ones
    design["run"]["max_injected_fraction"] = 0.35  # a quarter of the run is contaminated text: a large effect on purpose
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"text": f"Question: Where is {n}?\nAnswer: {a}"}) + "\n"
                                                 for n, a in zip(invented_names(8, np.random.default_rng(5)), invented_names(8, np.random.default_rng(6)))))
    design["experiments"] = [
        {"name": "bc", "kind": "contamination", "items": str(_olmes_mc(tmp_path / "mc.jsonl", 45)),
         "arms": {"control": {"dose": 0, "share": 0.4}, "x16": {"dose": 16, "share": 0.4},
                  "x16_early": {"dose": 16, "share": 0.2, "window": [0.0, 0.4]}}},
        {"name": "bc_text", "kind": "contamination", "items": str(tmp_path / "text.jsonl"),
         "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}},
    ]
    plan, run, report = tmp_path / "plan", tmp_path / "run", tmp_path / "report"
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(plan)]) == 0
    assert main(["train", str(plan), "--out", str(run), "--accelerator", "cpu", "--quiet"]) == 0
    assert main(["analyze", str(run), "--out", str(report), "--quiet"]) == 0
    capsys.readouterr()
    effects = pd.read_parquet(report / "effects.parquet")
    bc = effects[(effects["experiment"] == "bc") & (effects["step"] == 100)]
    primary = bc[(bc["family"] == "confirmatory")]
    assert set(primary["outcome"]) == {"accuracy"}  # OLMES multiple choice: ranked-choice accuracy is primary
    late = primary[primary["arm"] == "x16"].iloc[0]
    assert late["estimate"] > 0.3 and late["p"] < 0.01
    contrast = bc[(bc["comparison"] == "window_contrast") & (bc["outcome"] == "accuracy")]
    assert contrast[["arm", "control_arm"]].values.tolist() == [["x16", "x16_early"]]  # forgetting: late minus early
    text = (report / "report.md").read_text()
    assert "Familiarity, not recall, may drive gold_logprob" in text
    assert set(effects.loc[effects["experiment"] == "bc_text", "outcome"]) >= {"gold_logprob", "recall_contrast"}


@pytest.mark.parametrize("content,field", [
    ('{"question": "Q?", "answer": "A"}\n', "query"),                                   # wrong keys
    ('{"query": "Question: Q?\\nAnswer:", "choices": ["a", "b", "c"]}\n', "gold"),       # choices without a gold index
    ("", None),                                                                          # empty file
])
def test_bad_benchmark_files_are_refused_in_one_line_naming_the_field(tmp_path, tiny_corpus, capsys, content, field):
    (tmp_path / "b.jsonl").write_text(content)
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "bc", "kind": "contamination", "items": "b.jsonl",
                              "arms": {"control": {"dose": 0, "share": 0.5}, "x4": {"dose": 4, "share": 0.5}}}]
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("designkit: error:") and "\n" not in err and "b.jsonl" in err
    assert (f": {field}: expected" in err) if field else "expected at least one item" in err
    assert not (tmp_path / "plan").exists()
