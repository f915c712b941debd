"""End-to-end training on CPU: provenance, checkpoints, refusals, continual pretraining, edits."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from training_runs import CHECKPOINTS, make_engine_plan, make_trained_run

from designkit.cli import main as designkit_main
from designkit.errors import InputError
from designkit.planning import Plan
from designkit.planning.planfile import write_plan
from designkit.provenance import check_run
from engine import checkpoint, settings
from engine.applied_log import AppliedLogMismatch
from engine.model import embedding_noise, noise_tensor
from engine.stream import InjectingStream
from engine.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def engine_plan(tmp_path_factory, tiny_corpus):
    return make_engine_plan(tmp_path_factory, tiny_corpus)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, engine_plan):
    return make_trained_run(tmp_path_factory, engine_plan)


def _metrics(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _keys(frame):
    return sorted(zip(frame["global_seq"], frame["offset"], frame["item_index"], frame["edit"].astype(str)))


def test_applied_log_equals_the_plans_placements(trained_run, engine_plan):
    plan = Plan.open(engine_plan)
    applied = pd.read_parquet(trained_run / "applied.parquet")
    placements = plan.placements()
    assert len(applied) == len(placements) > 0
    assert _keys(applied) == _keys(placements)
    assert (applied["step"] == applied["global_seq"] // plan.global_batch).all()
    assert (applied["rank"] == 0).all()
    items = plan.items().set_index("item_index")["item_id"]
    assert (applied["item_id"].to_numpy() == items.loc[applied["item_index"]].to_numpy()).all()
    assert check_run(plan, applied).agrees  # the analysis's check of the same log


def test_training_with_a_wrong_payload_in_the_stream_is_stopped_and_analysis_refuses_it(tmp_path, engine_plan, monkeypatch):
    """A planted stream bug: the batches carry one token of an inserted item's payload changed."""
    plan = Plan.open(engine_plan)
    item = int(plan.placements()["item_index"].iloc[0])
    first_token = int(plan.payload[1][item])
    apply = InjectingStream._apply

    def corrupted(self, out, first_seq, lo, hi):
        original = self.payload_tokens
        self.payload_tokens = original.copy()
        self.payload_tokens[first_token] += 1
        try:
            apply(self, out, first_seq, lo, hi)
        finally:
            self.payload_tokens = original

    monkeypatch.setattr(InjectingStream, "_apply", corrupted)
    with pytest.raises(AppliedLogMismatch, match="trained other tokens than the plan's"):
        train(engine_plan, tmp_path / "run", accelerator="cpu", show_progress=False)
    check = check_run(plan, pd.read_parquet(tmp_path / "run" / "applied.parquet"))
    repetitions = int((plan.placements()["item_index"] == item).sum())
    assert (check.missing, check.extra, check.wrong_step, check.wrong_tokens) == (0, 0, 0, repetitions)


def test_loss_falls_on_a_small_real_run(trained_run):
    rows = _metrics(trained_run)
    assert [int(r["step"]) for r in rows] == list(range(5, 41, 5))
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.5
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)
    assert 0 < float(rows[0]["injected_share"]) < 0.5


def test_run_json_records_the_plan_and_the_settings(trained_run, engine_plan):
    meta = json.loads((trained_run / "run.json").read_text())
    assert meta["format"] == "designkit-run/3"
    assert meta["plan_hash"] == Plan.open(engine_plan).hash
    assert meta["plan_path"] == str(engine_plan.resolve())
    assert meta["precision"] == "32-true" and meta["accelerator"] == "cpu" and meta["world_size"] == 1
    assert "designkit_version" in meta


def test_checkpoints_are_saved_at_the_plans_steps_in_litgpt_layout(trained_run):
    assert checkpoint.checkpoint_steps(trained_run) == [0, *CHECKPOINTS]
    names = {p.name for p in checkpoint.step_dir(trained_run, 40).iterdir()}
    assert {"lit_model.pth", "model_config.yaml", "tokenizer.json", "tokenizer_config.json", "training_state.pt"} <= names
    state = torch.load(checkpoint.step_dir(trained_run, 20) / "training_state.pt", weights_only=True)
    assert state["step"] == 20 and state["global_seq"] == 160 and "optimizer" in state and state["controller"] is None


def test_checkpoint_loads_with_litgpt_gpt_and_config_from_file(trained_run):
    from litgpt.config import Config
    from litgpt.model import GPT

    directory = checkpoint.step_dir(trained_run, 40)
    model = GPT(Config.from_file(directory / "model_config.yaml"))
    model.load_state_dict(torch.load(directory / "lit_model.pth", weights_only=True), strict=True)
    untrained = torch.load(checkpoint.step_dir(trained_run, 0) / "lit_model.pth", weights_only=True)
    assert not torch.equal(untrained["lm_head.weight"], model.lm_head.weight)
    with torch.no_grad():
        logits = model(torch.zeros(1, 8, dtype=torch.long))
    assert logits.shape == (1, 8, model.config.padded_vocab_size)


def test_checkpoint_loads_with_litgpt_llm_api_offline(trained_run):
    from litgpt.api import LLM

    llm = LLM.load(str(checkpoint.step_dir(trained_run, 40)), distribute=None)
    llm.distribute(accelerator="cpu", precision="32-true")
    assert isinstance(llm.generate("The", max_new_tokens=3, temperature=0.0), str)


def test_an_edited_plan_is_refused(tmp_path, engine_plan):
    edited = tmp_path / "plan"
    shutil.copytree(engine_plan, edited)
    payload = edited / "payload_tokens.npy"
    data = bytearray(payload.read_bytes())
    data[-1] ^= 1
    payload.write_bytes(bytes(data))
    with pytest.raises(InputError, match="payload_tokens.npy"):
        train(edited, tmp_path / "run", accelerator="cpu", show_progress=False)
    assert not (tmp_path / "run").exists()
    assert designkit_main(["train", str(edited), "--out", str(tmp_path / "run"), "--quiet"]) == 2


def test_a_non_empty_run_dir_is_refused_without_resume_or_force(tmp_path, engine_plan):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="--resume.*--force"):
        train(engine_plan, tmp_path / "run", accelerator="cpu", show_progress=False)
    with pytest.raises(InputError, match="never deletes other directories"):
        train(engine_plan, tmp_path / "run", force=True, accelerator="cpu", show_progress=False)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_resume_refuses_a_run_dir_made_from_another_plan(tmp_path, trained_run, engine_plan):
    run = tmp_path / "run"
    run.mkdir()
    meta = json.loads((trained_run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "plan_hash": "0" * 64}))
    with pytest.raises(InputError, match="plan_hash"):
        train(engine_plan, run, resume=True, accelerator="cpu", show_progress=False)


def test_resuming_a_finished_run_trains_nothing_and_rechecks_the_log(tmp_path, trained_run, engine_plan):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / "checkpoints" / "step-00000040" / "lit_model.pth").read_bytes()
    summary = train(engine_plan, run, resume=True, accelerator="cpu", show_progress=False)
    assert summary.resumed_from == 40 and summary.tokens == 0
    assert summary.applied_edits == len(Plan.open(engine_plan).placements())
    assert (run / "checkpoints" / "step-00000040" / "lit_model.pth").read_bytes() == before
    assert len(_metrics(run)) == len(_metrics(trained_run))


def test_global_batch_must_split_evenly_over_processes(engine_plan):
    with pytest.raises(InputError, match="divisible by the 3 processes"):
        settings.resolve(Plan.open(engine_plan), 3, "cpu")
    assert settings.resolve(Plan.open(engine_plan), 2, "cpu").local_batch == 4


def test_gradient_accumulation_gives_the_same_training(tmp_path_factory, tiny_corpus):
    overrides = {"run.steps": 10, "run.max_injected_fraction": 0.5, "run.training.checkpoints": [10], "run.training.save_initial": False}
    whole = make_engine_plan(tmp_path_factory, tiny_corpus, "plan-mb-none", **overrides)
    micro = make_engine_plan(tmp_path_factory, tiny_corpus, "plan-mb-2", **overrides, **{"run.training.micro_batch_size": 2})
    assert settings.resolve(Plan.open(micro), 1, "cpu").accumulation == 4
    a = make_trained_run(tmp_path_factory, whole, "run-mb-none")
    b = make_trained_run(tmp_path_factory, micro, "run-mb-2")
    loss_a = [float(r["loss"]) for r in _metrics(a)]
    loss_b = [float(r["loss"]) for r in _metrics(b)]
    assert loss_a == pytest.approx(loss_b, rel=1e-4)
    wa = torch.load(a / "checkpoints/step-00000010/lit_model.pth", weights_only=True)
    wb = torch.load(b / "checkpoints/step-00000010/lit_model.pth", weights_only=True)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-3, atol=1e-5)


def test_continual_pretraining_starts_from_the_checkpoint_weights(tmp_path_factory, tiny_corpus, trained_run):
    source = checkpoint.step_dir(trained_run, 40)
    plan = make_engine_plan(
        tmp_path_factory, tiny_corpus, "plan-continual",
        **{"run.model": {"checkpoint": str(source)}, "run.steps": 20, "run.max_injected_fraction": 0.5, "run.training.checkpoints": [20]},
    )  # fmt: skip
    assert Plan.open(plan).meta["model"]["checkpoint"] == str(source)
    run = make_trained_run(tmp_path_factory, plan, "run-continual")
    start = torch.load(checkpoint.step_dir(run, 0) / "lit_model.pth", weights_only=True)
    given = torch.load(source / "lit_model.pth", weights_only=True)
    assert start.keys() == given.keys() and all(torch.equal(start[k], given[k]) for k in given)
    assert torch.load(checkpoint.step_dir(run, 0) / "training_state.pt", weights_only=True)["optimizer"]["state"] == {}
    # it continues from a trained model: its first losses are far below an untrained model's
    assert float(_metrics(run)[0]["loss"]) < float(_metrics(trained_run)[0]["loss"]) - 0.5


def test_continual_pretraining_refuses_weights_changed_since_planning(tmp_path, tmp_path_factory, tiny_corpus, trained_run):
    source = tmp_path / "source"
    shutil.copytree(checkpoint.step_dir(trained_run, 40), source)
    plan = make_engine_plan(
        tmp_path_factory, tiny_corpus, "plan-continual-changed",
        **{"run.model": {"checkpoint": str(source)}, "run.steps": 20, "run.max_injected_fraction": 0.5, "run.training.checkpoints": [20]},
    )  # fmt: skip
    weights = torch.load(source / "lit_model.pth", weights_only=True)
    weights[next(iter(weights))] += 1.0
    torch.save(weights, source / "lit_model.pth")
    with pytest.raises(InputError, match="lit_model.pth.*weights changed"):
        train(plan, tmp_path / "run", accelerator="cpu", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_overlapping_insertions_are_refused_before_training(tmp_path, engine_plan):
    plan = Plan.open(engine_plan)
    frame = plan.placements()
    frame = frame.assign(edit=frame["edit"].astype(str))
    first = frame.iloc[0]
    clash = first.copy()
    clash["offset"] = int(first["offset"]) + 1 if int(first["offset"]) + int(first["n_tokens"]) < plan.seq_len else int(first["offset"]) - 1
    clash["repetition"] = 99
    frame = pd.concat([frame, clash.to_frame().T.astype(frame.dtypes.to_dict())], ignore_index=True)
    frame = frame.sort_values(["global_seq", "offset"], kind="stable").reset_index(drop=True)
    meta = {k: v for k, v in plan.meta.items() if k not in ("files", "format")}
    payload_tokens, payload_index = plan.payload
    edited = tmp_path / "plan"
    write_plan(edited, meta, plan.items(), plan.payloads(), plan.probe_instances(), np.asarray(payload_tokens), payload_index, frame, plan.reserved(), plan.tokenizer_dir)
    with pytest.raises(InputError, match="placements.parquet: expected valid placements, found that two edits overlap"):
        train(edited, tmp_path / "run", accelerator="cpu", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_remove_and_noise_edits_are_applied_and_logged(tmp_path, engine_plan):
    plan = Plan.open(engine_plan)
    placements = plan.placements()
    free = np.setdiff1d(np.arange(plan.n_sequences), placements["global_seq"].to_numpy())
    removed, noisy = free[:3], free[3:5]
    canary_item = int(plan.items().query("experiment == 'canary'")["item_index"].iloc[0])
    extra = pd.DataFrame(
        {
            "global_seq": np.r_[removed, noisy].astype(np.int64),
            "offset": np.int32(0),
            "n_tokens": np.int32(plan.seq_len + 1),
            "item_index": np.r_[[-1] * 3, [canary_item] * 2].astype(np.int32),
            "payload_index": np.int32(-1),
            "repetition": np.int32(0),
            "edit": ["remove"] * 3 + ["noise"] * 2,
            "reserve_seq": np.r_[[0, 5, 2], [-1, -1]].astype(np.int64),
            "noise_seed": np.r_[[-1] * 3, [11, 12]].astype(np.int64),
            "noise_std": np.r_[[0.0] * 3, [0.3, 0.3]].astype(np.float32),
        }
    )
    frame = pd.concat([placements.assign(edit=placements["edit"].astype(str)), extra], ignore_index=True)
    frame = frame.sort_values(["global_seq", "offset"], kind="stable").reset_index(drop=True)
    meta = {k: v for k, v in plan.meta.items() if k not in ("files", "format")}
    payload_tokens, payload_index = plan.payload
    edited = tmp_path / "plan"
    write_plan(edited, meta, plan.items(), plan.payloads(), plan.probe_instances(), np.asarray(payload_tokens), payload_index, frame, plan.reserved(), plan.tokenizer_dir)
    summary = train(edited, tmp_path / "run", accelerator="cpu", show_progress=False)
    applied = pd.read_parquet(tmp_path / "run" / "applied.parquet")
    assert summary.applied_edits == len(applied) == len(frame)
    assert sorted(applied.loc[applied["edit"] == "remove", "global_seq"]) == sorted(removed)
    assert sorted(applied.loc[applied["edit"] == "noise", "global_seq"]) == sorted(noisy)
    # a removed sequence is the reserve window it names
    stream = InjectingStream.from_plan(Plan.open(edited))
    tokens, _, _ = stream.sequences(int(removed[1]), int(removed[1]) + 1)
    start = stream.train_tokens + 5 * stream.window
    np.testing.assert_array_equal(tokens[0], np.asarray(stream.tokens[start : start + stream.window], dtype=np.int64))
    batch = stream.batch(int(noisy[0]) // plan.global_batch)
    assert batch.noise_stds.tolist() == pytest.approx([0.3] * len(batch.noise_rows))


def test_embedding_noise_adds_seeded_noise_to_exactly_the_named_rows():
    from litgpt.config import Config
    from litgpt.model import GPT

    torch.manual_seed(0)
    model = GPT(Config(n_layer=1, n_head=2, n_embd=8, block_size=6, padded_vocab_size=16, vocab_size=16))
    x = torch.randint(0, 16, (3, 6))
    seen = []
    model.transformer.h[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        model(x)
        with embedding_noise(model, np.array([1]), np.array([42]), np.array([0.5], np.float32)):
            model(x)
        model(x)
    clean, noisy, after = seen
    torch.testing.assert_close(noisy[[0, 2]], clean[[0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(noisy[1] - clean[1], noise_tensor(42, 0.5, 6, 8), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(after, clean, rtol=0, atol=0)  # the hook is gone


def test_tensorboard_logs_stay_inside_the_run_dir_and_wandb_needs_its_package(tmp_path, tmp_path_factory, tiny_corpus, monkeypatch):
    import importlib.util

    plan = make_engine_plan(tmp_path_factory, tiny_corpus, "plan-mb-none", **{"run.steps": 10, "run.max_injected_fraction": 0.5,
                            "run.training.checkpoints": [10], "run.training.save_initial": False})  # fmt: skip
    monkeypatch.chdir(tmp_path)
    train(plan, tmp_path / "run", logger="tensorboard", accelerator="cpu", show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(InputError, match="pip install wandb"):
            train(plan, tmp_path / "run2", logger="wandb", accelerator="cpu", show_progress=False)
