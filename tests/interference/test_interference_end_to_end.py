"""plan → train → analyze-interference on a real tiny run: a planted interference is caught,
an independent pair is negligible.

Two contamination experiments draw their questions from one synthetic fact pool (the same
items file), so training on one's treated questions moves the other's scores: planted
interference. A canary experiment of random tokens shares nothing with them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_designs import TINY_MODEL, write_design

from designkit.cli import main
from designkit.kinds.names import invented_names
from designkit.planning import make_plan
from engine.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

PARENT_STEPS, BRANCH, SUB_STEPS = 30, 20, 16


def fact_pool(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    places = invented_names(n, rng)
    answers = invented_names(n, rng, taken=set(places))
    with path.open("w") as fh:
        for i, (place, answer) in enumerate(zip(places, answers)):
            distractors = [answers[(i + k) % n] for k in (7, 13, 21)]
            fh.write(json.dumps({"id": f"f{i:03d}", "query": f"Question: What is the capital of {place}?\nAnswer:",
                                 "choices": [answer, *distractors], "gold": 0}) + "\n")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def parent(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("interference-e2e")
    pool = fact_pool(root / "facts.jsonl")
    # margins: 0.01 nats per token of the gold answer's log-prob, 0.02 nats of canary loss
    facts = {"kind": "contamination", "items": str(pool), "interference_margin": 0.01, "params": {"primary_outcome": "gold_logprob"},
             "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}  # fmt: skip
    design = {
        "name": "interfere",
        "seed": 5,
        "run": {
            "model": {"config": dict(TINY_MODEL)},
            "corpus": str(tiny_corpus),
            "seq_len": 64,
            "global_batch": 8,
            "steps": PARENT_STEPS,
            "max_injected_fraction": 0.25,
            "training": {"learning_rate": 3e-3, "warmup_steps": 3, "checkpoints": [BRANCH, PARENT_STEPS], "log_every": 2},
        },
        "leakage": {"scan_corpus": False},
        "experiments": [
            {"name": "facts_a", **facts},
            {"name": "facts_b", **facts},
            {"name": "canary", "kind": "canary", "items": {"generate": {"n": 16, "length": 16}}, "interference_margin": 0.02,
             "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}, "params": {"prefix_tokens": 4}},
        ],
    }  # fmt: skip
    make_plan(write_design(root / "design.yaml", design), root / "plan", show_progress=False)
    train(root / "plan", root / "run", accelerator="cpu", show_progress=False)
    return root


def test_planted_interference_is_flagged_and_the_independent_pair_is_negligible(parent, capsys):
    ckpt = parent / "run" / "checkpoints" / f"step-{BRANCH:08d}"
    inter, report = parent / "inter", parent / "report"
    assert main(["plan-interference", str(parent / "plan"), "--from-checkpoint", str(ckpt), "--steps", str(SUB_STEPS),
                 "--design", "one-at-a-time", "--share", "0.05", "--out", str(inter)]) == 0  # fmt: skip
    assert "5 runs" in capsys.readouterr().out

    assert main(["train-interference", str(inter), "--print-commands"]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 5 and all(c.startswith("designkit train ") and "--out" in c for c in commands)

    assert main(["train-interference", str(inter), "--quiet"]) == 0
    assert main(["train-interference", str(inter), "--resume", "--quiet"]) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 5
    assert main(["train-interference", str(inter), "--quiet"]) == 2  # runs exist: refused without --resume

    assert main(["analyze-interference", str(inter), "--out", str(report), "--quiet"]) == 0
    for name in ("interference.json", "interference.parquet", "report.md", "report.html", "interference_matrix.png", "loss.png"):
        assert (report / name).is_file(), name
    cells = pd.read_parquet(report / "interference.parquet")
    primary = cells[cells["family"] == "primary"].set_index(["experiment", "source"])
    print(primary[["estimate", "ci_low", "ci_high", "p_adj", "p_tost", "verdict"]].to_string())
    # planted: the same questions, treated in facts_b, raise facts_a's gold log-prob (and vice versa)
    assert primary.loc[("facts_a", "facts_b"), "verdict"] == "effect" and primary.loc[("facts_a", "facts_b"), "estimate"] > 0
    assert primary.loc[("facts_b", "facts_a"), "verdict"] == "effect"
    # independent: random-token canaries do not move the facts' answers
    assert primary.loc[("facts_a", "canary"), "verdict"] == "negligible"
    assert primary.loc[("facts_b", "canary"), "verdict"] == "negligible"
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "negligible" in html and "effect" in html
