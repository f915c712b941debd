"""MR on a tiny model: plan, train and analyze a reasoning experiment end to end.

Measured (2 CPU cores, 300 steps, 8 templates of one op step mod 23, 12 training problems
each inserted 24 times): the model learns the solution format (an answer line on most test
problems) but answers a constant, so accuracy is near chance in both arms (treated minus
control +0.03, p = 0.39). Modular arithmetic on new numbers is beyond this model and budget;
the test asserts what the run reaches: the probe keeps the tokens and extracts answers, and
the analysis reports accuracy against chance and its effect per op stratum.
"""

import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main

STEPS = 300
MAX_NEW = 40


@pytest.mark.slow
def test_reasoning_runs_end_to_end_and_the_answer_probe_extracts_answers(tmp_path, tiny_corpus, capsys, one_torch_thread):
    design = tiny_design(tiny_corpus, **{"run.steps": STEPS, "run.training.checkpoints": [STEPS], "run.training.save_initial": False})
    design["run"].update(seq_len=128, max_injected_fraction=0.6)
    design["run"]["model"]["config"]["block_size"] = 256  # the problem plus its generated solution
    design["run"]["training"]["learning_rate"] = 3e-3
    design["experiments"] = [{
        "name": "mr", "kind": "reasoning", "stratify_by": "stratum",
        # the tiny 512-token BPE splits names into letters, so 13 of its tokens are ~4 words and
        # every instance of a template would share one; 40 tokens is ~13 words
        "params": {"modulus": 23, "max_new_tokens": MAX_NEW, "ngram": 40},
        "items": {"generate": {"n": 8, "ops": ["add", "mul"], "steps": 1, "train_problems": 12, "test_problems": 8}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "treated": {"dose": 24, "share": 0.5}},
    }]  # fmt: skip
    plan, run, report = tmp_path / "plan", tmp_path / "run", tmp_path / "report"
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(plan), "--quiet"]) == 0
    assert main(["train", str(plan), "--out", str(run), "--accelerator", "cpu", "--quiet"]) == 0
    assert main(["analyze", str(run), "--out", str(report), "--quiet"]) == 0
    capsys.readouterr()

    scores = pd.read_parquet(run / "scores" / f"step-{STEPS:08d}.parquet")
    solve = scores[scores["probe"] == "solve"]
    assert len(solve) == 8 * 8 and (solve["generated"].map(len) == MAX_NEW).all()  # every instance, its tokens kept
    assert solve["answered"].mean() > 0.5  # the inserted problems taught the solution format
    assert solve.loc[solve["answered"], "answer"].str.fullmatch(r"\d+").all()

    effects = pd.read_parquet(report / "effects.parquet")
    final = effects[(effects["experiment"] == "mr") & (effects["step"] == STEPS)]
    accuracy = final[final["outcome"] == "accuracy"].iloc[0]
    assert accuracy["ci_low"] <= accuracy["estimate"] <= accuracy["ci_high"] and 0 <= accuracy["p"] <= 1
    assert len(final[final["outcome"] == "accuracy_by_op"]) == 2  # add and mul strata
