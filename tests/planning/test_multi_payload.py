"""Items with several payloads and several probe instances (issue 11's shared capability), at
the planner: each payload placed with its own repetitions, placements naming their payload,
probe instances in their own table, budget counting every payload."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_designs import tiny_design, write_design

from designkit.planning import Plan, make_plan
from designkit.planning.placement import check_placements
from designkit.provenance import insertion_checksums, plan_checksums

KINDS = "plugins.multi_payload_kinds"


def facts_design(corpus, kind="KeyedFacts", *, n=8, paraphrases=3, dose=2, **params):
    design = tiny_design(corpus, **{"run.steps": 12})
    design["experiments"] = [{
        "name": "facts", "kind": f"{KINDS}:{kind}", "items": {"generate": {"n": n, "paraphrases": paraphrases}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "treated": {"dose": dose, "share": 0.5}}, "params": params,
    }]
    return design


@pytest.fixture(scope="module")
def facts_plan(tmp_path_factory, tiny_corpus) -> Plan:
    root = tmp_path_factory.mktemp("facts-plan")
    make_plan(write_design(root / "d.yaml", facts_design(tiny_corpus)), root / "plan", show_progress=False)
    return Plan.open(root / "plan")


def test_every_payload_of_a_treated_item_is_placed_dose_times_and_named_by_its_placements(facts_plan):
    items, payloads, placements = facts_plan.items(), facts_plan.payloads(), facts_plan.placements()
    assert len(payloads) == 3 * len(items) and (items["n_payloads"] == 3).all()
    assert payloads["payload_index"].tolist() == list(range(len(payloads)))
    assert (payloads.groupby("item_index")["ordinal"].apply(list) == [[0, 1, 2]] * len(items)).all()
    treated = set(items.loc[items["inserted"], "item_index"])
    counts = placements.groupby("payload_index").size()
    expected = payloads[payloads["item_index"].isin(treated)]
    assert set(counts.index) == set(expected["payload_index"]) and (counts == 2).all()
    assert (payloads.loc[payloads["item_index"].isin(treated), "dose"] == 2).all()
    # each placement names a payload of its own item and covers that payload's tokens plus the EOS wrappers
    by_payload = payloads.set_index("payload_index")
    assert (by_payload.loc[placements["payload_index"], "item_index"].to_numpy() == placements["item_index"].to_numpy()).all()
    assert (by_payload.loc[placements["payload_index"], "n_tokens"].to_numpy() + 2 == placements["n_tokens"].to_numpy()).all()
    assert sorted(placements.groupby("payload_index")["repetition"].apply(sorted).tolist()) == [[0, 1]] * len(counts)
    assert check_placements(placements, seq_len=facts_plan.seq_len, n_sequences=facts_plan.n_sequences) is None


def test_payload_tokens_are_stored_per_payload_and_provenance_checksums_follow_the_payload(facts_plan):
    tokens, index = facts_plan.payload
    payloads = facts_plan.payloads()
    assert len(index) == len(payloads) + 1
    assert (np.diff(index) == payloads["n_tokens"].to_numpy()).all()
    # paraphrases of one fact share its key but differ in the value: distinct payload checksums
    eos = int(facts_plan.meta["corpus"]["eos_id"])
    per_payload = insertion_checksums(np.asarray(tokens), index, eos)
    assert len(set(per_payload.tolist())) == len(payloads)
    planned = plan_checksums(facts_plan)
    placements = facts_plan.placements()
    assert (planned == per_payload[placements["payload_index"].to_numpy()]).all()


def test_probe_instances_have_their_own_table_and_probe_rows_pair_each_with_its_item(facts_plan):
    items, instances = facts_plan.items(), facts_plan.probe_instances()
    assert (items["n_instances"] == 3).all() and len(instances) == 3 * len(items)
    assert instances[["item_index", "instance"]].values.tolist() == [[i, j] for i in range(len(items)) for j in range(3)]
    assert [json.loads(m)["paraphrase"] for m in instances["instance_meta"]] == [0, 1, 2] * len(items)
    rows = facts_plan.probe_rows()
    assert len(rows) == len(instances)
    assert (rows["item_id"].to_numpy() == items["item_id"].to_numpy()[instances["item_index"].to_numpy()]).all()
    # each instance's target is one of its item's paraphrase values, in payload order
    for row in rows.head(6).itertuples():
        payload = facts_plan.payload_of(3 * row.item_index + row.instance)
        assert list(payload[-3:]) == list(row.target_tokens) and list(payload[:4]) == list(row.prompt_tokens)


def test_budget_counts_every_payload_of_every_treated_item(facts_plan):
    items, payloads = facts_plan.items(), facts_plan.payloads()
    (row,) = [r for r in facts_plan.meta["budget"]["rows"] if r["arm"] == "treated"]
    treated = payloads[payloads["item_index"].isin(items.loc[items["inserted"], "item_index"])]
    assert row["insertions"] == 2 * len(treated)
    assert row["tokens"] == int(((treated["n_tokens"] + 2) * 2).sum())


def test_a_kind_whose_dose_counts_the_item_cycles_over_its_payloads_in_time_order(tmp_path, tiny_corpus):
    make_plan(write_design(tmp_path / "d.yaml", facts_design(tiny_corpus, "CycledFacts", dose=7)), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items, payloads, placements = plan.items(), plan.payloads(), plan.placements()
    (row,) = [r for r in plan.meta["budget"]["rows"] if r["arm"] == "treated"]
    assert row["insertions"] == 7 * int(items["inserted"].sum())
    for item, rows in placements.groupby("item_index"):
        ordinals = payloads.loc[rows.sort_values(["global_seq", "offset"])["payload_index"], "ordinal"].tolist()
        assert ordinals == [k % 3 for k in range(7)]  # insertion k is paraphrase k mod 3
        assert payloads.loc[payloads["item_index"] == item, "dose"].tolist() == [3, 2, 2]
    assert check_placements(placements, seq_len=plan.seq_len, n_sequences=plan.n_sequences) is None


def test_single_payload_items_keep_one_payload_row_per_item_and_their_placements(tiny_plan):
    plan = Plan.open(tiny_plan)
    items, payloads, placements = plan.items(), plan.payloads(), plan.placements()
    assert payloads["item_index"].tolist() == items["item_index"].tolist() and (payloads["ordinal"] == 0).all()
    assert (placements["payload_index"] == placements["item_index"]).all()
    assert plan.probe_instances()["item_index"].tolist() == items["item_index"].tolist()
