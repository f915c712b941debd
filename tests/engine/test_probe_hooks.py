"""The probe contract beyond the built-ins: autograd, kept generations, corpus windows (tests/engine/probe_hooks.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from probe_hooks import Continuation, EmbeddingGradNorm, EmbeddingGradRequest, WindowLoss
from test_score import write_checkpoint

from designkit.plan_types import ProbeSpec
from designkit.planning import Plan
from designkit.probes import SpanRequest, make_probe
from engine.probes import greedy_decode_reference, score_probes, score_probes_reference, span_logprobs_reference
from engine.score import load_checkpoint, plan_probes, score_checkpoint
from engine.stream import InjectingStream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def plan(tiny_plan) -> Plan:
    return Plan.open(tiny_plan)


@pytest.fixture(scope="module")
def checkpoint(plan, tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("hooks") / "step-00000001", plan.meta["model"]["config"], seed=1)


def with_probes(plan: Plan, experiment: str, probes: list[dict]) -> Plan:
    """``plan`` with extra probes on one experiment (in memory; the files are untouched)."""
    experiments = [{**e, "probes": e["probes"] + probes} if e["name"] == experiment else e for e in plan.meta["experiments"]]
    return Plan(path=plan.path, meta={**plan.meta, "experiments": experiments}, hash=plan.hash)


def test_a_request_that_needs_grad_runs_with_autograd_and_others_do_not(checkpoint):
    model = load_checkpoint(checkpoint)
    probe = EmbeddingGradNorm()
    jobs = [(probe, (5, 6, 7, 8)), (probe, (9, 10))]
    rows = score_probes(model, jobs, eos_id=0)
    assert all(np.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in rows)
    assert rows == score_probes_reference(model, jobs, eos_id=0)
    assert all(p.grad is None for p in model.parameters())  # the statistic leaves the weights' grads alone

    class UnderInferenceMode(EmbeddingGradRequest):
        needs_grad = False

    class NoGradProbe(EmbeddingGradNorm):
        def requests(self, probe_input, eos_id):
            return [UnderInferenceMode((int(eos_id),) + probe_input)]

    with pytest.raises(RuntimeError):  # the engine's default mode really is inference_mode
        score_probes(model, [(NoGradProbe(), (5, 6, 7))], eos_id=0)


def test_a_generation_probe_keeps_its_tokens_as_a_list_column(plan, checkpoint):
    spec = {"name": "free", "type": "probe_hooks:Continuation", "prompt": "prompt_tokens", "max_new_tokens": 5}
    edited = with_probes(plan, "canary", [spec])
    resolved = plan_probes(edited)
    assert resolved.schema.field("generated").type == pa.list_(pa.int32())
    scores = score_checkpoint(edited, checkpoint, step=1, probes=resolved)
    rows = scores[scores["probe"] == "free"]
    assert len(rows) == int((plan.items()["experiment"] == "canary").sum())
    model = load_checkpoint(checkpoint)
    probe = make_probe(ProbeSpec.from_json(spec))
    assert isinstance(probe, Continuation)
    items = plan.probe_rows().set_index("item_index")
    for row in rows.itertuples(index=False):
        prompt = tuple(int(t) for t in items.at[row.item_index, "prompt_tokens"])
        want = greedy_decode_reference(model, probe.requests(prompt, 0)[0])
        assert list(row.generated) == want.tolist() and row.n_generated == 5


def test_a_window_probe_scores_the_trained_tokens_of_a_global_sequence(plan, checkpoint):
    placements = plan.placements()
    g = int(placements.loc[placements["edit"].astype(str) == "insert", "global_seq"].iloc[0])
    edited = with_probes(plan, "bench", [{"name": "window", "type": "probe_hooks:WindowLoss", "global_seq": g}])
    scores = score_checkpoint(edited, checkpoint, step=1)
    got = scores.loc[scores["probe"] == "window", "window_loss"].to_numpy()
    trained = InjectingStream.from_plan(plan).sequences(g, g + 1)[0][0]
    row = placements[placements["global_seq"] == g].iloc[0]
    payload = plan.payload_of(int(row["item_index"]))
    assert trained[int(row["offset"]) + 1 : int(row["offset"]) + 1 + len(payload)].tolist() == payload.tolist()  # edits applied
    want = -span_logprobs_reference(load_checkpoint(checkpoint), SpanRequest(tuple(int(t) for t in trained), 1)).mean()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert len(got) == int((plan.items()["experiment"] == "bench").sum())
