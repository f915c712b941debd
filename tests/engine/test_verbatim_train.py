"""MemV on a tiny model, CPU: spans the run keeps are completed verbatim, removed spans are not.

The corpus's training region is one random-token document repeated (duplicated text, so
every span occurs ~36 times and the model memorizes the small core within a few hundred
steps); random tokens make a removed span's suffix unguessable (1/64 per token). The effect
must come out of the whole pipeline: plan (span finder, removal edits) → train (the applied log
checked against the plan) → score (greedy probe) → the analysis's estimators, at p < 0.01.
"""

from __future__ import annotations

import pytest
from tiny_designs import write_design
from verbatim_designs import repeated_core_corpus, verbatim_design

from designkit.analysis import results
from designkit.planning import make_plan
from engine.score import score_run
from engine.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_kept_spans_are_completed_verbatim_and_removed_spans_are_not(tmp_path, tiny_corpus):
    # 36 copies of a 1,500-token core (~1,770 windows of 33 tokens) and a reserve large enough
    # for a fresh window per removed visit: 8 removed spans × ~52 windows × ~3.6 epochs
    corpus = repeated_core_corpus(tmp_path / "data", tiny_corpus, core_tokens=1500, copies=36, reserve_tokens=60_000)
    design = verbatim_design(corpus, n=16, steps=800, learning_rate=3e-3)
    design["run"]["model"]["config"].update(n_embd=64, intermediate_size=128)
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    train(tmp_path / "plan", tmp_path / "run", accelerator="cpu", show_progress=False)
    score_run(tmp_path / "run", device="cpu", show_progress=False)
    effects = results.load(tmp_path / "run").effects.set_index("outcome")  # refuses a run whose edits differ from the plan

    for outcome in ("completed", "completed_prefix"):  # exact suffix completion (primary) and prefix-match length
        row = effects.loc[outcome]
        assert row["arm"] == "removed" and row["control_arm"] == "kept"
        assert row["estimate"] < 0 and row["p"] < 0.01, (outcome, row["estimate"], row["p"])  # removed minus kept
    assert effects.loc["completed", "treated_mean"] == 0.0  # no removed span is completed
    assert effects.loc["completed_prefix", "control_mean"] >= 3.0  # kept spans: several suffix tokens reproduced
