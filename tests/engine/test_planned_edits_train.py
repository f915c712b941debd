"""A design with removal, whole-window noise and span-noise experiments plans, trains, and its
applied log checks out; the trained batches hold exactly what the plan's edits say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_designs import edit_design, write_design

from designkit.planning import Plan, make_plan
from engine.model import embedding_noise, noise_tensor
from engine.stream import InjectingStream
from engine.train import train

@pytest.fixture(scope="module")
def edit_run(tmp_path_factory, tiny_corpus) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("edit-run")
    design = edit_design(tiny_corpus)
    design["run"]["training"].update(checkpoints=[8], save_initial=False)
    make_plan(write_design(root / "design.yaml", design), root / "plan", show_progress=False)
    torch.set_num_threads(1)
    train(root / "plan", root / "run", accelerator="cpu", show_progress=False)
    return root / "plan", root / "run"


def test_planned_removals_and_noise_train_and_the_applied_log_matches_the_plan(edit_run):
    plan_dir, run_dir = edit_run
    plan = Plan.open(plan_dir)
    placements = plan.placements()
    applied = pd.read_parquet(run_dir / "applied.parquet")  # train refuses a log that differs from the plan
    key = ["global_seq", "offset", "item_index"]
    planned = placements.assign(edit=placements["edit"].astype(str))[[*key, "edit"]].sort_values(key).reset_index(drop=True)
    logged = applied.assign(edit=applied["edit"].astype(str))[[*key, "edit"]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(logged, planned, check_dtype=False)
    assert {"insert", "remove", "noise"} <= set(logged["edit"])


def test_a_removed_sequence_trains_on_its_reserve_window_and_noise_reaches_the_batch_as_spans(edit_run):
    plan = Plan.open(edit_run[0])
    placements = plan.placements()
    stream = InjectingStream.from_plan(plan)
    width = plan.seq_len + 1
    for row in placements[placements["edit"] == "remove"].itertuples():
        tokens, _, _ = stream.sequences(row.global_seq, row.global_seq + 1)
        start = plan.corpus_info.train_tokens + row.reserve_seq * width
        np.testing.assert_array_equal(tokens[0], np.asarray(stream.tokens[start : start + width], dtype=np.int64))
    noisy = placements[placements["noise_std"] > 0]
    assert len(noisy) and set(noisy["edit"].astype(str)) == {"insert", "noise"}
    for row in noisy.itertuples():
        batch = stream.batch(row.global_seq // plan.global_batch)
        spans = set(zip(batch.noise_rows + batch.first_seq, batch.noise_offsets, batch.noise_lengths, batch.noise_seeds))
        assert (row.global_seq, row.offset, row.n_tokens, row.noise_seed) in spans


def test_embedding_noise_on_a_span_touches_exactly_that_span_with_its_seeded_noise():
    from litgpt.config import Config
    from litgpt.model import GPT

    torch.manual_seed(0)
    model = GPT(Config(n_layer=1, n_head=2, n_embd=8, block_size=10, padded_vocab_size=16, vocab_size=16))
    x = torch.randint(0, 16, (2, 10))
    seen = []
    model.transformer.h[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        model(x)
        # row 1 gets two spans (an inserted item's and a second one), row 0 a whole window (11 > 10 inputs)
        with embedding_noise(model, np.array([1, 1, 0]), np.array([7, 8, 9]), np.array([0.5, 0.25, 1.0], np.float32),
                             np.array([2, 6, 0]), np.array([3, 4, 11])):  # fmt: skip
            model(x)
    clean, noisy = seen
    diff = noisy - clean
    torch.testing.assert_close(diff[1, 2:5], noise_tensor(7, 0.5, 3, 8), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(diff[1, 6:10], noise_tensor(8, 0.25, 4, 8), rtol=1e-6, atol=1e-6)
    assert (diff[1, [0, 1, 5]] == 0).all()
    torch.testing.assert_close(diff[0], noise_tensor(9, 1.0, 10, 8), rtol=1e-6, atol=1e-6)
