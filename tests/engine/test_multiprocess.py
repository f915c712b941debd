"""Two CPU processes (DDP over gloo) train the same global stream as one process."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
import torch
from training_runs import make_engine_plan, make_trained_run, run_engine

from designkit.planning import Plan

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def engine_plan(tmp_path_factory, tiny_corpus):
    return make_engine_plan(tmp_path_factory, tiny_corpus)


def _losses(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(fh)]


def test_two_processes_apply_the_same_stream_and_train_alike(tmp_path, tmp_path_factory, engine_plan):
    run = tmp_path / "run"
    # Fabric's subprocess launcher re-runs `python -m designkit.cli train ...` for rank 1
    result = run_engine(engine_plan, "--out", run, "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained 40 steps") == 1  # only rank 0 reports
    reference = make_trained_run(tmp_path_factory, engine_plan)
    plan = Plan.open(engine_plan)

    two = pd.read_parquet(run / "applied.parquet")
    one = pd.read_parquet(reference / "applied.parquet")
    pd.testing.assert_frame_equal(two.drop(columns="rank"), one.drop(columns="rank"))
    # each rank applied exactly the edits of its half of every global batch
    half = plan.global_batch // 2
    assert (two["rank"] == (two["global_seq"] % plan.global_batch) // half).all()
    assert set(two["rank"]) == {0, 1}

    assert json.loads((run / "run.json").read_text())["world_size"] == 2
    steps_two, loss_two = zip(*_losses(run))
    steps_one, loss_one = zip(*_losses(reference))
    assert steps_two == steps_one
    assert loss_two == pytest.approx(loss_one, rel=1e-4)
    final_two = torch.load(run / "checkpoints/step-00000040/lit_model.pth", weights_only=True)
    final_one = torch.load(reference / "checkpoints/step-00000040/lit_model.pth", weights_only=True)
    for name in final_one:
        torch.testing.assert_close(final_two[name], final_one[name], rtol=1e-3, atol=1e-4)
