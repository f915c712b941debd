"""A continuation sub-run repeats its parent exactly: same later weights, same stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_runs import make_engine_plan

from designkit.planning.planfile import Plan
from designkit.planning.subplan import ContinuationSettings, ParentCheckpoint, SubRunSpec, write_subplan
from engine import checkpoint
from engine.stream import InjectingStream
from engine.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

PARENT_STEPS, BRANCH_STEP = 8, 4
PLACEBO_ONLY = [
    {
        "name": "placebo",
        "kind": "canary",
        "placebo": True,
        "items": {"generate": {"n": 8, "length": 16}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x3": {"dose": 3, "share": 0.5}},
    }
]


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory, tiny_corpus):
    """A parent whose plan has no edits (a placebo only), with a checkpoint at BRANCH_STEP."""
    plan = make_engine_plan(tmp_path_factory, tiny_corpus, "continuation-parent", experiments=PLACEBO_ONLY,
                            **{"run.steps": PARENT_STEPS, "run.training.checkpoints": [BRANCH_STEP, PARENT_STEPS],
                               "run.training.warmup_steps": 2, "run.training.log_every": 1})  # fmt: skip
    run = tmp_path_factory.mktemp("continuation") / "parent"
    train(plan, run, accelerator="cpu", show_progress=False)
    return Plan.open(plan), run


def _subplan(parent, run, out, **settings):
    ckpt = ParentCheckpoint.open(checkpoint.step_dir(run, BRANCH_STEP), parent)
    write_subplan(parent, ckpt, ContinuationSettings(steps=PARENT_STEPS - BRANCH_STEP, **settings), SubRunSpec("none", ()), out)
    return Plan.open(out)


def test_subrun_with_parent_optimizer_ends_bit_identical_to_the_parent(parent_run, tmp_path):
    parent, run = parent_run
    sub = _subplan(parent, run, tmp_path / "sub")
    assert sub.meta["geometry"]["stream_offset"] == BRANCH_STEP * parent.global_batch
    train(sub.path, tmp_path / "subrun", accelerator="cpu", show_progress=False)

    ours = torch.load(checkpoint.step_dir(tmp_path / "subrun", PARENT_STEPS - BRANCH_STEP) / "lit_model.pth", weights_only=True)
    theirs = torch.load(checkpoint.step_dir(run, PARENT_STEPS) / "lit_model.pth", weights_only=True)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), f"{name} differs after the continuation"
    parent_lr = [line.split(",")[3] for line in (run / "metrics.csv").read_text().splitlines()[1 + BRANCH_STEP:]]
    sub_lr = [line.split(",")[3] for line in (tmp_path / "subrun" / "metrics.csv").read_text().splitlines()[1:]]
    assert sub_lr == parent_lr


def test_subrun_stream_continues_after_the_parents_last_sequence(parent_run, tmp_path):
    parent, run = parent_run
    sub = _subplan(parent, run, tmp_path / "sub")
    theirs = InjectingStream.from_plan(parent)
    ours = InjectingStream.from_plan(sub)
    for step in range(PARENT_STEPS - BRANCH_STEP):
        np.testing.assert_array_equal(ours.batch(step).tokens, theirs.batch(BRANCH_STEP + step).tokens)
    assert not np.array_equal(ours.batch(0).tokens, theirs.batch(0).tokens)


def test_fresh_optimizer_subrun_differs_and_warms_up(parent_run, tmp_path):
    parent, run = parent_run
    sub = _subplan(parent, run, tmp_path / "sub", optimizer="fresh", warmup_steps=2)
    train(sub.path, tmp_path / "subrun", accelerator="cpu", show_progress=False)
    rows = (tmp_path / "subrun" / "metrics.csv").read_text().splitlines()[1:]
    sub_lr = [float(line.split(",")[3]) for line in rows]
    parent_lr = [float(line.split(",")[3]) for line in (run / "metrics.csv").read_text().splitlines()[1 + BRANCH_STEP:]]
    assert sub_lr[0] == pytest.approx(parent_lr[0] / 2) and sub_lr[2:] == pytest.approx(parent_lr[2:])
    ours = torch.load(checkpoint.step_dir(tmp_path / "subrun", PARENT_STEPS - BRANCH_STEP) / "lit_model.pth", weights_only=True)
    theirs = torch.load(checkpoint.step_dir(run, PARENT_STEPS) / "lit_model.pth", weights_only=True)
    assert any(not torch.equal(ours[n], theirs[n]) for n in theirs)


def test_existing_plans_have_no_stream_offset(tiny_plan):
    assert "stream_offset" not in Plan.open(tiny_plan).meta["geometry"]
    assert "continuation" not in Plan.open(tiny_plan).meta["training"]
