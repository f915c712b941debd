"""Gaussian watermarks (GW) end to end on a tiny model: the trained noise is re-derivable bit for
bit, never-trained watermarks give N(0, 1) statistics, and trained ones are detected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_designs import tiny_design, write_design

import designkit.analysis as dka
from designkit.analysis.ks_normal import ks_standard_normal
from designkit.analysis.report import write_report
from designkit.planning import Plan, make_plan
from designkit.probes import ProbeSpec, make_probe
from designkit.probes.watermark import watermark_noise
from engine.model import embedding_noise
from engine.probes import score_probes, score_probes_reference
from engine.score import load_checkpoint, score_run
from engine.stream import InjectingStream
from engine.train import train

STEPS = 60


def watermark_design(corpus: Path, **params) -> dict:
    """40 reserve texts of 20 tokens, half inserted 24 times with a strong watermark (sigma = 1)
    at a high learning rate: a tiny model learns inserted texts only at 2e-3 to 3e-3."""
    design = tiny_design(corpus, **{"run.steps": STEPS, "run.max_injected_fraction": 0.5})
    design["run"]["training"].update(checkpoints=[STEPS], learning_rate=3e-3, save_initial=False)
    design["experiments"] = [{
        "name": "wm", "kind": "watermark", "items": {"generate": {"n": 40, "n_tokens": 20}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x24": {"dose": 24, "share": 0.5}},
        "params": {"sigma": 1.0, **params},
    }]
    return design


@pytest.fixture(scope="module")
def watermark_run(tmp_path_factory, tiny_corpus, one_torch_thread) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("watermark")
    make_plan(write_design(root / "design.yaml", watermark_design(tiny_corpus)), root / "plan", show_progress=False)
    train(root / "plan", root / "run", accelerator="cpu", show_progress=False)
    score_run(root / "run", device="cpu", show_progress=False)
    return root / "plan", root / "run"


def test_every_item_has_a_watermark_seed_and_only_treated_items_are_trained_with_it(watermark_run):
    plan = Plan.open(watermark_run[0])
    items, placements = plan.probe_rows(), plan.placements()
    assert (items["noise_seed"] >= 0).all() and items["noise_seed"].is_unique
    treated = items["arm"] == "x24"
    assert (items.loc[treated, "noise_std"] == 1.0).all() and (items.loc[~treated, "noise_std"] == 0).all()
    assert set(placements["item_index"]) == set(items.index[treated])
    np.testing.assert_array_equal(placements["noise_seed"], items["noise_seed"].to_numpy()[placements["item_index"]])
    # the probe reads exactly the span the watermark covers: EOS + text + EOS
    assert (items["probe_tokens"].map(len) == 22).all() and (placements["n_tokens"] == 22).all()


def test_the_trained_watermark_is_bit_identical_to_the_one_re_derived_from_the_items_seed(watermark_run):
    plan = Plan.open(watermark_run[0])
    items, placements = plan.probe_rows(), plan.placements()
    stream = InjectingStream.from_plan(plan)
    model = load_checkpoint(watermark_run[1] / "checkpoints" / f"step-{STEPS:08d}", device="cpu")
    seen: list[torch.Tensor] = []
    # what the first block receives: the embeddings after the noise hook
    model.transformer.h[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    checked = 0
    for step in sorted(set(placements["global_seq"] // plan.global_batch))[:4]:
        batch = stream.batch(step)
        inputs = torch.from_numpy(batch.tokens[:, :-1])
        seen.clear()
        with torch.no_grad():
            model(inputs)
            with embedding_noise(model, batch.noise_rows, batch.noise_seeds, batch.noise_stds, batch.noise_offsets, batch.noise_lengths):
                model(inputs)
        clean, noisy = seen
        rows = placements[placements["global_seq"] // plan.global_batch == step]
        for row in rows.itertuples():
            r, span = row.global_seq - batch.first_seq, slice(row.offset, row.offset + row.n_tokens)
            item = items.loc[row.item_index]
            again = watermark_noise(item.noise_seed, item.noise_std, row.n_tokens, model.config.n_embd)
            assert torch.equal(noisy[r, span], clean[r, span] + again)
            assert torch.equal(again, watermark_noise(item.noise_seed, item.noise_std, row.n_tokens, model.config.n_embd))
            checked += 1
    assert checked >= 4
    # the rows of a watermark do not depend on the span length it is drawn for (a clipped span keeps its prefix)
    assert torch.equal(watermark_noise(5, 0.075, 65, 32)[:22], watermark_noise(5, 0.075, 22, 32))


def test_never_trained_watermarks_on_the_trained_model_are_standard_normal(watermark_run):
    plan_dir, run_dir = watermark_run
    plan = Plan.open(plan_dir)
    model = load_checkpoint(run_dir / "checkpoints" / f"step-{STEPS:08d}", device="cpu")
    probe = make_probe(ProbeSpec("watermark", "watermark_gradient", {"tokens": "probe_tokens", "seed": "noise_seed"}))
    items = plan.probe_rows()
    # every text, trained or not, against 8 fresh seeds the run never used: 320 null statistics
    jobs = [(probe, probe.Input(tuple(int(t) for t in tokens), 10**9 + 8 * i + j))
            for i, tokens in enumerate(items["probe_tokens"]) for j in range(8)]
    x = np.array([row["wm_stat"] for row in score_probes(model, jobs, eos_id=int(plan.meta["corpus"]["eos_id"]))])
    assert np.isfinite(x).all() and len(x) == 320
    # batched rows give each row its own gradient: the same statistics as one request at a time
    reference = score_probes_reference(model, jobs[:6], eos_id=int(plan.meta["corpus"]["eos_id"]))
    np.testing.assert_allclose([r["wm_stat"] for r in reference], x[:6], rtol=1e-4, atol=1e-5)
    d, _, _, p, _ = ks_standard_normal(x)
    assert p > 0.01, f"KS distance {d:.3f} from N(0, 1), p = {p:.3g}"
    assert abs(x.mean()) < 0.25 and 0.8 < x.std() < 1.2
    # the scored control arm: its calibration row is not flagged
    results = dka.load(run_dir)
    calibration = results.effects[results.effects["estimator"] == "watermark_calibration"]
    assert len(calibration) == 1 and calibration["p"].iloc[0] > 0.01 and not results.red_flags


def test_trained_watermarks_push_the_statistic_negative_and_are_detected(watermark_run, tmp_path):
    results = dka.load(watermark_run[1])
    effects = results.effects.set_index(["outcome", "arm"])
    shift = effects.loc[("mean_shift", "x24")]
    # training on e + eps makes the loss lower at e + eps than at e: grad . eps < 0, so x < 0
    assert shift["estimate"] < 0 and shift["ci_high"] < 0
    assert shift["p"] < 0.01 and shift["family"] == "confirmatory"
    assert effects.loc[("mean_shift", "control"), "p"] > 0.05
    scores = pd.read_parquet(watermark_run[1] / "scores" / f"step-{STEPS:08d}.parquet")
    assert scores["wm_stat"].notna().all() and len(scores) == 40
    write_report(results, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "Watermark calibration" in text and "watermark_p_wm.png" in text and "RED FLAG" not in text


def test_whole_base_sequences_get_their_watermark_wherever_the_run_reads_them_and_are_scored(tmp_path, tiny_corpus, one_torch_thread):
    design = watermark_design(tiny_corpus, target="sequences", arm_sigma={"x24": 0.3})
    design["run"]["steps"] = 6
    design["run"]["training"]["checkpoints"] = [6]
    design["experiments"][0]["items"] = {"generate": {"n": 10}}
    design["experiments"][0]["arms"] = {"control": {"dose": 0, "share": 0.5}, "x24": {"dose": 1, "share": 0.5}}
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items, placements = plan.probe_rows(), plan.placements()
    treated = (items["arm"] == "x24").to_numpy()
    assert (items["noise_seed"] >= 0).all() and np.allclose(items.loc[treated, "noise_std"], 0.3)
    assert len(placements) >= treated.sum() and set(placements["edit"].astype(str)) == {"noise"}
    assert set(placements["item_index"]) == set(np.flatnonzero(treated))
    assert (placements["n_tokens"] == plan.seq_len + 1).all()
    assert (items["probe_tokens"].map(len) == plan.seq_len + 1).all()
    # the probe feeds the window's seq_len inputs, the positions the whole-sequence noise covered
    train(tmp_path / "plan", tmp_path / "run", accelerator="cpu", show_progress=False)
    score_run(tmp_path / "run", device="cpu", show_progress=False)
    scores = pd.read_parquet(tmp_path / "run" / "scores" / "step-00000006.parquet")
    assert len(scores) == 10 and np.isfinite(scores["wm_stat"]).all() and (scores["grad_norm"] > 0).all()
