"""The watermark kind plans texts from a JSONL file, arms at several sigmas, and refuses bad params in one line."""

from __future__ import annotations

import json

import pytest
from tiny_designs import tiny_design, write_design

from designkit.errors import InputError
from designkit.planning import Plan, make_plan


def _design(corpus, items, **params) -> dict:
    design = tiny_design(corpus, **{"run.max_injected_fraction": 0.5})
    design["experiments"] = [{
        "name": "wm", "kind": "watermark", "items": items,
        "arms": {"control": {"dose": 0, "share": 0.34}, "weak": {"dose": 4, "share": 0.33}, "strong": {"dose": 4, "share": 0.33}},
        "params": params,
    }]
    return design


def test_texts_from_a_jsonl_file_carry_their_arms_sigma_and_the_probe_reads_eos_text_eos(tmp_path, tiny_corpus):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"id": f"t{i}", "body": f"A sentence number {i} about watermarks."}) + "\n"
                             for i in range(12)), encoding="utf-8")
    design = _design(tiny_corpus, str(texts), key="body", arm_sigma={"strong": 0.5})
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items, placements = plan.probe_rows(), plan.placements()
    eos = int(plan.meta["corpus"]["eos_id"])
    assert list(items["item_id"]) == [f"wm/t{i}" for i in range(12)]
    std = dict(zip(items["arm"], items["noise_std"]))
    assert std["control"] == 0.0 and std["weak"] == pytest.approx(0.075) and std["strong"] == pytest.approx(0.5)
    payload_tokens, payload_index = plan.payload
    for row in items.itertuples():
        payload = list(payload_tokens[payload_index[row.item_index] : payload_index[row.item_index + 1]])
        assert list(row.probe_tokens) == [eos, *payload, eos]
    assert (placements["noise_std"] > 0).all() and len(placements) == 4 * (items["dose"] > 0).sum()
    assert plan.experiment_specs[0].probes[0].type == "watermark_gradient"


def test_a_placebo_watermark_experiment_trains_no_noise(tmp_path, tiny_corpus):
    design = _design(tiny_corpus, {"generate": {"n": 9, "n_tokens": 12}})
    design["experiments"][0]["placebo"] = True
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items = plan.probe_rows()
    assert (items["noise_std"] == 0).all() and (items["noise_seed"] >= 0).all() and len(plan.placements()) == 0


@pytest.mark.parametrize(("params", "generate", "where"), [
    ({"arm_sigma": {"stronk": 0.5}}, {"n": 9, "n_tokens": 12}, "experiments[0].params.arm_sigma.stronk: expected an arm of this experiment"),
    ({"arm_sigma": {"strong": -1.0}}, {"n": 9, "n_tokens": 12}, "experiments[0].params.arm_sigma.strong: expected a positive std"),
    ({"sigma": 0}, {"n": 9, "n_tokens": 12}, "experiments[0].params.sigma"),
    ({}, {"n": 9, "n_tokens": 64}, "experiments[0].items.generate.n_tokens: expected at most 62 tokens"),
])
def test_bad_watermark_params_are_refused_in_one_line(tmp_path, tiny_corpus, params, generate, where):
    design = write_design(tmp_path / "design.yaml", _design(tiny_corpus, {"generate": generate}, **params))
    with pytest.raises(InputError) as refused:
        make_plan(design, tmp_path / "plan", show_progress=False)
    assert where in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "plan").exists()
