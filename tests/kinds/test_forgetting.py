"""The forgetting kind replaces whole global batches at its arms' steps with reserve windows,
each trained exactly once and nowhere else; control windows are never trained. The training
stream is rebuilt from the plan with the engine's own stream code and scanned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from forgetting_designs import forgetting_design
from tiny_designs import write_design
from verbatim_designs import random_token_corpus

from designkit.errors import InputError
from designkit.planning import Plan, make_plan
from engine.stream import InjectingStream

GLOBAL_BATCH = 8
REPLACE_AT = {"early": 3, "late": 17}


@pytest.fixture(scope="module")
def forgetting_plan(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("forgetting-plan")
    corpus = random_token_corpus(root / "data", tiny_corpus, n_tokens=30_000)
    design = forgetting_design(corpus, steps=20, replace_at=REPLACE_AT, batches=2)
    make_plan(write_design(root / "design.yaml", design), root / "plan", show_progress=False)
    return root


def _stream(plan: Plan) -> np.ndarray:
    stream = InjectingStream.from_plan(plan)
    return np.stack([np.asarray(stream.batch(step).tokens, dtype=np.int64) for step in range(plan.n_sequences // plan.global_batch)])


def test_replaced_batches_appear_exactly_once_at_their_step(forgetting_plan):
    plan = Plan.open(forgetting_plan / "plan")
    items = plan.probe_rows()
    batches = _stream(plan)  # (steps, global_batch, seq_len + 1)
    flat = batches.reshape(-1, batches.shape[-1])
    windows = np.stack([np.asarray(t, dtype=np.int64) for t in items["probe_tokens"]])
    # which trained sequences equal each item's window (the whole stream, every step)
    match = (flat[None, :, :] == windows[:, None, :]).all(axis=2)
    per_item = match.sum(axis=1)
    control = (items["arm"] == "control").to_numpy()
    assert (per_item[control] == 0).all()  # matched controls are never trained
    assert (per_item[~control] == 1).all()  # each treated window exactly once
    for arm, first in REPLACE_AT.items():
        rows = np.flatnonzero((items["arm"] == arm).to_numpy())
        assert len(rows) == 2 * GLOBAL_BATCH
        seqs = np.flatnonzero(match[rows].any(axis=0))
        # the arm's windows are every sequence of its two consecutive batches, nothing else
        assert seqs.tolist() == list(range(first * GLOBAL_BATCH, (first + 2) * GLOBAL_BATCH))
    # every window is a reserve window of use "forgetting", recorded with the sequence it replaces
    reserved = pd.read_parquet(forgetting_plan / "plan" / "reserved.parquet")
    mine = reserved[reserved["use"] == "forgetting"]
    assert len(mine) == len(items)
    assert (mine["global_seq"] >= 0).sum() == (~control).sum()


def test_forgetting_windows_are_reserve_tokens_the_corpus_region_never_holds(forgetting_plan):
    plan = Plan.open(forgetting_plan / "plan")
    items = plan.probe_rows()
    batches = _stream(plan)
    replaced_steps = {s for first in REPLACE_AT.values() for s in (first, first + 1)}
    others = np.concatenate([batches[s] for s in range(len(batches)) if s not in replaced_steps])
    windows = np.stack([np.asarray(t, dtype=np.int64) for t in items["probe_tokens"]])
    assert windows.shape[1] == 33
    assert not (others[None, :, :] == windows[:, None, :]).all(axis=2).any()


@pytest.mark.parametrize(
    ("params", "key"),
    [({"replace_at": {"early": 3}}, "replace_at"), ({"replace_at": {"early": 3, "late": 19}}, "replace_at.late"),
     ({"replace_at": {"early": 3, "late": 10, "other": 2}}, "replace_at")],
)
def test_forgetting_refuses_steps_that_miss_arms_or_leave_the_run(tmp_path, tiny_corpus, params, key):
    corpus = random_token_corpus(tmp_path / "data", tiny_corpus, n_tokens=30_000)
    design = forgetting_design(corpus, steps=20, replace_at=REPLACE_AT, batches=2)
    design["experiments"][0]["params"].update(params)
    with pytest.raises(InputError, match=key):
        make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)


def test_forgetting_batches_keep_out_of_a_verbatim_experiment_planned_after_it(tmp_path, tiny_corpus):
    from verbatim_designs import verbatim_design

    corpus = random_token_corpus(tmp_path / "data", tiny_corpus, n_tokens=30_000)
    design = forgetting_design(corpus, steps=20, replace_at=REPLACE_AT, batches=2)
    verbatim = verbatim_design(corpus, n=12, steps=20)["experiments"][0]
    design["experiments"].append(verbatim)
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items = plan.probe_rows()
    fc = items[items["experiment"] == "fc"]
    flat = _stream(plan).reshape(-1, 33)
    windows = np.stack([np.asarray(t, dtype=np.int64) for t in fc["probe_tokens"]])
    match = (flat[None, :, :] == windows[:, None, :]).all(axis=2)
    treated = (fc["arm"] != "control").to_numpy()
    assert (match[treated].sum(axis=1) == 1).all() and not match[~treated].any()
    replaced = np.flatnonzero(match.any(axis=0))
    expected = [s for first in REPLACE_AT.values() for s in range(first * GLOBAL_BATCH, (first + 2) * GLOBAL_BATCH)]
    assert replaced.tolist() == sorted(expected)

    # listed after the verbatim experiment, the batches may read its windows: refused in one line
    design["experiments"].reverse()
    with pytest.raises(InputError, match="list the forgetting experiment before"):
        make_plan(write_design(tmp_path / "design2.yaml", design), tmp_path / "plan2", show_progress=False)
