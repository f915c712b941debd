"""Scoring a run: every item × probe of the plan, the scores schema of docs/formats.md, determinism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from designkit.errors import InputError
from designkit.planning import Plan
from designkit.runfile import MODEL_FILE, STATE_FILE, RunDir
from designkit.probes import PROBES, scores_schema
from engine.probes import score_probes_reference
from engine.score import (
    KEY_COLUMNS,
    load_checkpoint,
    plan_probes,
    score_checkpoint,
    score_run,
    scores_path,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def write_checkpoint(directory: Path, config: dict, *, seed: int, train_on: list[list[int]] | None = None, steps: int = 0) -> Path:
    """A LitGPT checkpoint dir of a tiny GPT, optionally trained ``steps`` steps on ``train_on``."""
    from litgpt.config import Config
    from litgpt.model import GPT
    from litgpt.utils import save_config

    torch.manual_seed(seed)
    cfg = Config(**config)
    model = GPT(cfg)
    model.apply(model._init_weights)
    if steps:
        width = max(len(t) for t in train_on) + 1
        batch = torch.zeros(len(train_on), width, dtype=torch.int64)  # EOS-wrapped, EOS-padded (eos_id 0 here)
        for row, tokens in enumerate(train_on):
            batch[row, 1 : 1 + len(tokens)] = torch.tensor(tokens)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            logits = model(batch[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / MODEL_FILE)
    save_config(cfg, directory)
    torch.save({"step": steps}, directory / STATE_FILE)  # a complete checkpoint, as the engine writes it
    return directory


@pytest.fixture(scope="module")
def run_dir(tiny_plan, tmp_path_factory) -> Path:
    """A run of ``tiny_plan`` with two checkpoints: random (step 0) and trained on the payloads (step 40)."""
    plan = Plan.open(tiny_plan)
    assert plan.meta["corpus"]["eos_id"] == 0
    run = tmp_path_factory.mktemp("run")
    (run / "run.json").write_text(json.dumps({"format": "designkit-run/3", "plan_path": str(tiny_plan), "plan_hash": plan.hash}))
    config = plan.meta["model"]["config"]
    payloads = [plan.payload_of(i).tolist() for i in range(len(plan.items()))]
    write_checkpoint(run / "checkpoints" / "step-00000000", config, seed=0)
    write_checkpoint(run / "checkpoints" / "step-00000040", config, seed=0, train_on=payloads, steps=30)
    return run


@pytest.fixture(scope="module")
def plan(tiny_plan) -> Plan:
    return Plan.open(tiny_plan)


@pytest.fixture(scope="module")
def scores(plan, run_dir) -> pd.DataFrame:
    return score_checkpoint(plan, run_dir / "checkpoints" / "step-00000040", step=40, batch_tokens=512)


def _used_probe_types(plan) -> list:
    return list(dict.fromkeys(PROBES.get(p["type"]) for e in plan.experiments for p in e["probes"]))


def test_scores_columns_are_the_keys_and_the_columns_of_the_plans_probe_types(plan, scores):
    used = _used_probe_types(plan)
    assert {cls.name for cls in used} == {"logprob", "multiple_choice", "greedy", "text_loss"}
    expected = list(KEY_COLUMNS) + [c.name for cls in used for c in cls.columns]
    assert list(scores.columns) == expected == scores_schema(used).names == plan_probes(plan).schema.names


def test_a_plan_without_a_probe_type_has_none_of_its_columns(plan):
    experiments = [e for e in plan.meta["experiments"] if e["kind"] == "canary"]
    edited = Plan(path=plan.path, meta={**plan.meta, "experiments": experiments}, hash=plan.hash)
    names = plan_probes(edited).schema.names
    assert "loss" in names and "exact_match" in names
    assert not {"logprob", "choice_logprobs", "margin"} & set(names)


def test_every_item_gets_one_row_per_probe_of_its_experiment(plan, scores):
    items = plan.items()
    expected = sum(int((items["experiment"] == e["name"]).sum()) * len(e["probes"]) for e in plan.experiments)
    assert len(scores) == expected
    assert not scores.duplicated(["item_index", "probe"]).any()
    merged = scores.merge(items[["item_index", "item_id", "experiment"]], on="item_index", suffixes=("", "_item"))
    assert (merged["item_id"] == merged["item_id_item"]).all()
    assert (merged["experiment"] == merged["experiment_item"]).all()
    assert (scores["step"] == 40).all()


def test_columns_of_other_probe_types_are_null(plan, scores):
    types = {(e["name"], p["name"]): p["type"] for e in plan.experiments for p in e["probes"]}
    for (experiment, probe), rows in scores.groupby(["experiment", "probe"]):
        kind = types[(experiment, probe)]
        for other, columns in ((cls.name, cls.column_names()) for cls in _used_probe_types(plan)):
            for column in columns:
                present = rows[column].notna()
                if other == kind and column not in ("correct", "correct_norm", "logprob_per_token", "gold_logprob_norm", "margin", "zlib_ratio", "min_k_logprob"):
                    assert present.all(), (probe, column)
                elif other != kind:
                    assert not present.any(), (probe, column)


def test_scores_equal_the_unbatched_reference(plan, run_dir, scores):
    probes = plan_probes(plan)
    model = load_checkpoint(run_dir / "checkpoints" / "step-00000040")
    reference = score_probes_reference(model, probes.jobs, eos_id=0)
    assert len(reference) == len(scores)
    for (_, got), want in zip(scores.iterrows(), reference):
        for column, value in want.items():
            if isinstance(value, list):
                np.testing.assert_allclose(np.asarray(got[column]), value, rtol=0, atol=1e-5, err_msg=column)
            elif isinstance(value, float):
                np.testing.assert_allclose(got[column], value, rtol=0, atol=1e-5, err_msg=column)
            else:
                assert got[column] == value, column


def test_trained_checkpoint_prefers_inserted_payloads(plan, run_dir, scores):
    """Sanity: training on the payloads lowers their loss below the random checkpoint's."""
    before = score_checkpoint(plan, run_dir / "checkpoints" / "step-00000000", step=0)
    loss_before = before.loc[before["probe"] == "loss", "loss"].mean()
    loss_after = scores.loc[scores["probe"] == "loss", "loss"].mean()
    assert loss_after < loss_before - 1.0


def test_scoring_twice_gives_identical_values(plan, run_dir, scores):
    again = score_checkpoint(plan, run_dir / "checkpoints" / "step-00000040", step=40, batch_tokens=512)
    pd.testing.assert_frame_equal(scores, again, check_exact=True)


def test_score_run_writes_missing_checkpoints_atomically_and_deterministically(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    written = score_run(run, device="cpu", show_progress=False)
    assert written == [scores_path(run, 0), scores_path(run, 40)]
    assert sorted(p.name for p in (run / "scores").iterdir()) == ["step-00000000.parquet", "step-00000040.parquet"]
    assert score_run(run, device="cpu", show_progress=False) == []
    first = {p: pq.read_table(p) for p in written}
    assert score_run(run, device="cpu", show_progress=False, force=True, steps=[40]) == [scores_path(run, 40)]
    for path, table in first.items():
        assert pq.read_table(path).equals(table)
    assert pq.read_table(written[0]).schema.equals(plan_probes(RunDir.open(run).plan()).schema)
    frame = RunDir.open(run).scores()
    assert sorted(frame["step"].unique()) == [0, 40]
    pd.testing.assert_frame_equal(
        frame[frame["step"] == 40].reset_index(drop=True),
        score_checkpoint(Plan.open(json.loads((run / "run.json").read_text())["plan_path"]), run / "checkpoints" / "step-00000040", step=40),
        check_exact=True,
    )


def test_score_run_refuses_a_plan_whose_hash_differs(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "plan_hash": "0" * 64}))
    with pytest.raises(InputError, match="plan_hash: expected the plan at .* to have hash 000000000000") as info:
        score_run(run, show_progress=False)
    assert str(run) in str(info.value) and "\n" not in str(info.value)
    assert not (run / "scores").exists()


def test_score_run_refuses_a_run_without_checkpoints(run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(run_dir / "run.json", run / "run.json")
    with pytest.raises(InputError, match=r"checkpoints: expected at least one checkpoints/step-XXXXXXXX/lit_model.pth") as info:
        score_run(run, show_progress=False)
    assert str(info.value).startswith(str(run))


def test_score_run_refuses_unknown_steps(run_dir):
    with pytest.raises(InputError, match=r"expected checkpoints for steps \[7\]"):
        score_run(run_dir, steps=[7], show_progress=False)


def test_score_run_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="run.json: expected a run directory"):
        score_run(tmp_path, show_progress=False)


def test_probe_longer_than_block_size_is_refused(plan, tmp_path):
    config = {**plan.meta["model"]["config"], "block_size": 8}
    checkpoint = write_checkpoint(tmp_path / "step-00000001", config, seed=0)
    with pytest.raises(InputError, match="block_size: expected at least"):
        score_checkpoint(plan, checkpoint, step=1)


def test_items_lacking_a_probe_field_get_no_row(plan):
    items = plan.probe_rows()
    instances = plan.probe_instances().copy()
    mc_item = int(items.index[items["choices_tokens"].notna()][0])
    instances.at[mc_item, "choices_tokens"] = None
    edited = Plan(path=plan.path, meta=plan.meta, hash=plan.hash)
    edited._cache["instances"] = instances
    keys = plan_probes(edited).keys
    experiment = items.at[mc_item, "experiment"]
    mc_probes = [p["name"] for e in plan.experiments if e["name"] == experiment for p in e["probes"] if p["type"] == "multiple_choice"]
    assert mc_probes, "the fixture plan must have multiple-choice probes"
    assert len(keys) == len(plan_probes(plan).keys) - len(mc_probes)
    assert not ((keys["item_index"] == mc_item) & keys["probe"].isin(mc_probes)).any()


def _score_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "designkit.cli", "score", *map(str, args), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_scoring_on_two_processes_writes_the_rows_of_one(run_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for copy in (one, two):
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("scores"))
    n_pairs = len(plan_probes(RunDir.open(one).plan()).jobs)
    assert n_pairs > 4 * 16  # several blocks each: both processes score some
    assert score_run(one, device="cpu", block_pairs=16, show_progress=False) == [scores_path(one, 0), scores_path(one, 40)]
    # Fabric's subprocess launcher re-runs `python -m designkit.cli score ...` for rank 1
    result = _score_cli(two, "--devices", "2", "--device", "cpu", "--block-pairs", "16")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("scored 2 checkpoint(s)") == 1  # only rank 0 reports
    for step in (0, 40):
        assert pq.read_table(scores_path(two, step)).equals(pq.read_table(scores_path(one, step)))  # same order, same values


def test_blocks_cover_every_pair_once_in_plan_order():
    from engine.score import pair_blocks

    assert pair_blocks(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert pair_blocks(0, 2) == []
    with pytest.raises(InputError, match="--block-pairs"):
        pair_blocks(5, 0)


def test_devices_need_a_device_type_not_one_device(run_dir):
    with pytest.raises(InputError, match="--device: expected auto, cpu or cuda with --devices N"):
        score_run(run_dir, devices=2, device="cuda:0")
