"""Kill -9 mid-run, resume: the final weights and the applied log equal an uninterrupted run's."""

from __future__ import annotations

import csv
import signal

import pandas as pd
import pytest
import torch
from training_runs import kill_after_checkpoint, make_engine_plan, make_trained_run, run_engine

from engine import checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def engine_plan(tmp_path_factory, tiny_corpus):
    return make_engine_plan(tmp_path_factory, tiny_corpus)


def _losses(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return [(int(r["step"]), r["loss"], r["lr"], r["injected_share"]) for r in csv.DictReader(fh)]


def test_kill_and_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, tmp_path_factory, engine_plan):
    run = tmp_path / "run"
    assert kill_after_checkpoint(engine_plan, run, step=10, chunk_end=14, slowdown=0.15) == -signal.SIGKILL
    last = checkpoint.latest_checkpoint(run)
    assert last is not None and 10 <= last < 40
    assert not (run / "applied.parquet").exists()

    resumed = run_engine(engine_plan, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    reference = make_trained_run(tmp_path_factory, engine_plan)  # one process, never interrupted

    for step in (last, 40):
        ours = torch.load(checkpoint.step_dir(run, step) / "lit_model.pth", weights_only=True)
        theirs = torch.load(checkpoint.step_dir(reference, step) / "lit_model.pth", weights_only=True)
        assert ours.keys() == theirs.keys()
        for name in theirs:
            assert torch.equal(ours[name], theirs[name]), f"{name} differs at step {step}"
    pd.testing.assert_frame_equal(pd.read_parquet(run / "applied.parquet"), pd.read_parquet(reference / "applied.parquet"))
    assert _losses(run) == _losses(reference)
