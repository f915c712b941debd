"""FC on a tiny model, CPU: batches trained once near the end have a lower loss than
never-trained control batches, and the whole pipeline finds it: plan (batch replacement) →
train (the applied log checked against the plan) → score (sequence_loss) → forgetting_curve.

Random tokens keep every window's loss near log(64) with a small spread, so the one-step
gain of a high learning rate (3e-3) on the replaced batches stands out at p < 0.01.
"""

from __future__ import annotations

import pytest
from forgetting_designs import forgetting_design
from tiny_designs import write_design
from verbatim_designs import random_token_corpus

import pandas as pd

from designkit.analysis import results
from designkit.planning import make_plan
from engine.score import score_run
from engine.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

STEPS = 60
INLOOP_EVERY = 20  # and, planned by the kind, every 2 steps for 20 steps after the replacement
BATCHES = 8  # the last 8 batches: 64 treated and 64 control windows


def test_batches_trained_once_near_the_end_have_lower_loss_than_untrained_controls(tmp_path, tiny_corpus):
    corpus = random_token_corpus(tmp_path / "data", tiny_corpus, n_tokens=60_000)
    # a constant learning rate after warmup (min_lr = learning_rate): a cosine decay would leave the last steps little to learn
    design = forgetting_design(corpus, steps=STEPS, replace_at={"late": STEPS - BATCHES}, batches=BATCHES,
                               checkpoints=[STEPS // 2, STEPS], min_lr=3e-3, inloop_every=INLOOP_EVERY)
    design["run"]["model"]["config"].update(n_embd=64, intermediate_size=128)  # capacity to take in one batch
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    train(tmp_path / "plan", tmp_path / "run", accelerator="cpu", show_progress=False)
    score_run(tmp_path / "run", device="cpu", show_progress=False)
    run = results.load(tmp_path / "run")  # refuses a run whose edits differ from the plan
    effects = run.effects[run.effects["estimator"] == "forgetting_curve"].set_index("step")

    final = effects.loc[STEPS]
    assert final["arm"] == "late" and final["control_arm"] == "control" and final["note"] == f"steps since seen: {BATCHES - 1}"
    assert final["estimate"] < 0 and final["p"] < 0.01, (final["estimate"], final["p"])
    assert final["family"] == "confirmatory"
    before = effects.loc[STEPS // 2]  # the batch is not trained yet: a placebo row
    assert before["note"] == f"steps since seen: {STEPS // 2 - (STEPS - BATCHES) - 1}"
    assert before["p"] > 0.01 or abs(before["estimate"]) < abs(final["estimate"]) / 3, (before["estimate"], before["p"])

    # in-loop evaluation: every INLOOP_EVERY steps, and densely right after the replacement
    first = STEPS - BATCHES
    inloop = pd.read_parquet(tmp_path / "run" / "scores" / "inloop.parquet")
    dense = list(range(first + 1, STEPS + 1, INLOOP_EVERY // 10))
    assert sorted(inloop["step"].unique()) == sorted({0, 20, 40, 60, *dense})  # step 0: the initial model
    section = next(s for s in run.sections if s.title.startswith("Forgetting curves at in-loop"))
    curve = section.table.set_index("step")
    assert curve.loc[first + 1, "steps_since_seen"] == 0 and curve.loc[20, "steps_since_seen"] < 0
    assert curve.loc[STEPS, "estimate"] < 0 and curve.loc[STEPS, "p"] < 0.01
    assert any(f.name == "forgetting_fc_inloop.png" for f in run.figures)
