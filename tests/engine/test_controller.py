"""Run-time dose control (KA, Algorithm 1) and in-loop evaluation in the training loop."""

from __future__ import annotations

import math
import signal
import time

import pandas as pd
import pytest
import torch
from knowledge_runs import make_knowledge_plan
from training_runs import kill_after_checkpoint, make_engine_plan, make_trained_run, run_engine

from designkit.planning.planfile import Plan
from designkit.provenance import check_run
from designkit.runfile import RunDir, controller_log
from engine import checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def knowledge_plan(tmp_path_factory, tiny_corpus):
    return make_knowledge_plan(tmp_path_factory.getbasetemp() / "knowledge", tiny_corpus)


@pytest.fixture(scope="module")
def knowledge_run(tmp_path_factory, knowledge_plan):
    from engine.train import train

    run = tmp_path_factory.getbasetemp() / "knowledge" / "run"
    if not (run / "applied.parquet").is_file():
        train(knowledge_plan, run, force=run.exists(), accelerator="cpu", show_progress=False)
    return run


def _weights(run, step):
    return torch.load(checkpoint.step_dir(run, step) / "lit_model.pth", weights_only=True)


def test_plan_reserves_slots_for_every_interval_and_budgets_their_capacity(knowledge_plan):
    plan = Plan.open(knowledge_plan)
    slots = plan.reserved()
    slots = slots[slots["interval"] >= 0]
    assert sorted(slots["interval"].unique()) == list(range(8))  # 40 steps / every 5
    assert (slots.groupby("interval").size() == 24).all()
    for interval, rows in slots.groupby("interval"):  # each slot lies inside its interval's steps
        assert (rows["global_seq"] // plan.global_batch // 5 == interval).all()
    assert not set(slots["global_seq"]) & set(plan.placements()["global_seq"])
    budget = pd.DataFrame(plan.meta["budget"]["rows"])
    assert budget["tokens"].sum() == slots["n_tokens"].sum()


def test_fills_follow_the_logged_decisions_and_controls_are_never_inserted(knowledge_plan, knowledge_run):
    plan, run = Plan.open(knowledge_plan), RunDir.open(knowledge_run)
    log, applied, items = run.controller(), run.applied(), plan.items()
    assert sorted(log["interval"].unique()) == list(range(8))
    assert (log["filled"] <= log["requested"]).all()
    treated = set(items.loc[items["arm"] == "treated", "item_index"])
    assert set(applied["item_index"]) <= treated and set(log["item_index"]) == treated
    per_interval = applied.assign(interval=applied["step"] // 5).groupby("interval").size()
    assert per_interval.to_dict() == log.groupby("interval")["filled"].sum().to_dict()
    # the doses moved: the controller acted (doubling while below the target)
    assert log["requested"].max() > log["requested"].min()
    inloop = run.inloop_scores()
    assert sorted(inloop["step"].unique()) == list(range(0, 41, 5))


def test_applied_log_check_accepts_only_the_logged_fills(knowledge_plan, knowledge_run):
    plan, run = Plan.open(knowledge_plan), RunDir.open(knowledge_run)
    log, applied = run.controller(), run.applied()
    assert check_run(plan, applied, log).agrees
    assert not check_run(plan, applied, None).agrees  # fills without a logged decision are unplanned edits
    fewer = log.copy()
    row = fewer.index[fewer["filled"] > 0][0]
    fewer.loc[row, "requested"] = fewer.loc[row, "filled"] - 1
    assert not check_run(plan, applied, fewer).agrees
    forged = applied.copy()
    forged.loc[0, "item_index"] = int(plan.items().query("arm == 'control'")["item_index"].iloc[0])
    assert not check_run(plan, forged, log).agrees


def test_prefetcher_never_builds_a_batch_past_an_undecided_interval(tmp_path, knowledge_plan, monkeypatch):
    import engine.control
    import engine.stream
    from engine.train import train

    runs, built = [], []
    original_init, original_batch = engine.control.ControlledRun.__init__, engine.stream.InjectingStream.batch

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        runs.append(self)

    def batch(self, step):
        built.append((step, runs[0].allowed_end()))
        time.sleep(0.002)  # let the prefetcher run ahead if nothing holds it
        return original_batch(self, step)

    monkeypatch.setattr(engine.control.ControlledRun, "__init__", init)
    monkeypatch.setattr(engine.stream.InjectingStream, "batch", batch)
    train(knowledge_plan, tmp_path / "run", accelerator="cpu", show_progress=False)
    assert [s for s, _ in built] == list(range(40))
    assert all(step < allowed for step, allowed in built)


def test_inloop_evaluation_leaves_training_bit_identical(tmp_path, tmp_path_factory, tiny_corpus, monkeypatch):
    import engine.train
    from engine.inloop import InloopEvaluator
    from engine.score import plan_probes
    from engine.train import train

    plan = make_engine_plan(tmp_path_factory, tiny_corpus)
    reference = make_trained_run(tmp_path_factory, plan)  # no in-loop evaluation
    original = InloopEvaluator.from_plan.__func__

    def every_three_steps(cls, plan_, run_dir, **kwargs):
        evaluator = original(cls, plan_, run_dir, **kwargs)
        assert evaluator is None  # the engine plan asks for none: switch it on for both experiments
        probes = plan_probes(plan_)
        return cls(probes, {"bench": [3], "canary": [3]}, int(plan_.meta["corpus"]["eos_id"]), run_dir,
                   write=kwargs["write"], resume_step=kwargs["resume_step"])  # fmt: skip

    monkeypatch.setattr(engine.train.InloopEvaluator, "from_plan", classmethod(every_three_steps))
    run = tmp_path / "run"
    train(plan, run, accelerator="cpu", show_progress=False)
    for step in (10, 40):
        ours, theirs = _weights(run, step), _weights(reference, step)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), f"weights differ at step {step}"
    inloop = RunDir.open(run).inloop_scores()
    assert sorted(inloop["step"].unique()) == list(range(0, 41, 3))
    checkpoint_scores = pd.read_parquet(tmp_path_factory.getbasetemp() / "engine-run" / "scores" / "step-00000040.parquet") \
        if (tmp_path_factory.getbasetemp() / "engine-run" / "scores" / "step-00000040.parquet").is_file() else None
    assert list(inloop.columns) == list(plan_probes(Plan.open(plan)).schema.names)
    if checkpoint_scores is not None:
        assert list(inloop.columns) == list(checkpoint_scores.columns)


def test_controller_resumes_after_kill_with_the_same_decisions_and_weights(tmp_path, knowledge_plan, knowledge_run):
    run = tmp_path / "run"
    assert kill_after_checkpoint(knowledge_plan, run, step=20, chunk_end=24, slowdown=0.08) == -signal.SIGKILL
    assert checkpoint.latest_checkpoint(run) == 20
    assert controller_log(run)["step"].max() > 20  # decisions after the checkpoint: the resume must drop and redo them
    resumed = run_engine(knowledge_plan, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "controller.csv").read_bytes() == (knowledge_run / "controller.csv").read_bytes()
    ours, theirs = _weights(run, 40), _weights(knowledge_run, 40)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    pd.testing.assert_frame_equal(pd.read_parquet(run / "applied.parquet"), pd.read_parquet(knowledge_run / "applied.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(run / "scores" / "inloop.parquet"),
                                  pd.read_parquet(knowledge_run / "scores" / "inloop.parquet"))  # fmt: skip


def test_controller_doubles_below_the_target_and_halves_above_it(knowledge_run):
    log = controller_log(knowledge_run).sort_values(["item_index", "interval"])
    previous = log.groupby("item_index")["requested"].shift()
    moved = log.assign(previous=previous).dropna(subset=["previous"])
    below = moved[moved["probe_value"].map(math.exp) < moved["target"]]
    above = moved[moved["probe_value"].map(math.exp) >= moved["target"]]
    assert len(below) and len(above)  # the tiny model crosses the target: both branches of the rule run
    assert (below["requested"] == (below["previous"] * 2).clip(upper=16)).all()
    assert (above["requested"] == (above["previous"] // 2).clip(lower=1)).all()


def test_knowledge_effect_is_detected_on_a_tiny_model(knowledge_run):
    from designkit.analysis import results
    from engine.score import score_run

    score_run(knowledge_run, device="cpu", show_progress=False)
    effects = results.load(knowledge_run).effects
    final = effects[(effects["experiment"] == "facts") & (effects["comparison"] == "vs_control") & (effects["step"] == 40)]
    assert len(final) == 1
    assert final["estimate"].iloc[0] > 0 and final["ci_low"].iloc[0] > 0 and final["p"].iloc[0] < 0.01



def test_report_shows_trajectories_and_the_tokens_the_controller_used(tmp_path, knowledge_plan, knowledge_run):
    import json

    from designkit.analysis.report import analyze_run
    from engine.score import score_run

    score_run(knowledge_run, device="cpu", show_progress=False)
    analyze_run(knowledge_run, tmp_path / "report")
    assert (tmp_path / "report" / "controller_trajectories_facts.png").stat().st_size > 1000
    assert "as often as the dose controller decided" in (tmp_path / "report" / "report.md").read_text()  # not "once"
    document = json.loads((tmp_path / "report" / "results.json").read_text())
    (section,) = [s for s in document["sections"] if s["title"].startswith("Run-time dose control")]
    (row,) = section["rows"]
    applied, plan = RunDir.open(knowledge_run).applied(), Plan.open(knowledge_plan)
    assert row["tokens_used"] == applied["n_tokens"].sum() > 0  # every insert of this plan is a controller fill
    assert row["share_of_run"] == pytest.approx(row["tokens_used"] / plan.meta["geometry"]["total_tokens"])
    assert row["payloads_filled"] == len(applied)


def test_two_processes_evaluate_decide_and_fill_as_one(tmp_path, knowledge_plan, knowledge_run):
    run = tmp_path / "run"
    result = run_engine(knowledge_plan, "--out", run, "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    two, one = controller_log(run), controller_log(knowledge_run)
    pd.testing.assert_frame_equal(two.drop(columns="probe_value"), one.drop(columns="probe_value"))
    assert two["probe_value"].to_numpy() == pytest.approx(one["probe_value"].to_numpy(), rel=1e-4)
    applied_two, applied_one = pd.read_parquet(run / "applied.parquet"), pd.read_parquet(knowledge_run / "applied.parquet")
    pd.testing.assert_frame_equal(applied_two.drop(columns="rank"), applied_one.drop(columns="rank"))
    assert set(applied_two["rank"]) == {0, 1}  # both ranks trained fills of their halves of the batches
    inloop = RunDir.open(run).inloop_scores()
    assert sorted(inloop["step"].unique()) == list(range(0, 41, 5))  # rank 0 wrote every evaluation once
    assert not inloop.duplicated(["item_index", "probe", "step"]).any()
