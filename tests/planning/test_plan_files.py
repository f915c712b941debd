import filecmp
import json

import numpy as np
import pytest
from tiny_designs import tiny_design, write_design

from designkit.errors import InputError
from designkit.planning import Plan, make_plan
from designkit.planning.placement import check_placements


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_design_and_seed_give_a_byte_identical_plan(tmp_path, design_file):
    make_plan(design_file, tmp_path / "a", show_progress=False)
    make_plan(design_file, tmp_path / "b", show_progress=False)
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")


def test_a_different_seed_gives_a_different_plan(tmp_path, tiny_corpus):
    a = make_plan(write_design(tmp_path / "a.yaml", tiny_design(tiny_corpus)), tmp_path / "a", show_progress=False)
    b = make_plan(write_design(tmp_path / "b.yaml", tiny_design(tiny_corpus, seed=4)), tmp_path / "b", show_progress=False)
    assert a.plan_hash != b.plan_hash
    assert not filecmp.cmp(tmp_path / "a" / "placements.parquet", tmp_path / "b" / "placements.parquet", shallow=False)


def test_plan_directory_holds_the_documented_files_and_invariants(tiny_plan):
    plan = Plan.open(tiny_plan)
    names = {p.name for p in tiny_plan.iterdir()}
    assert {"plan.json", "items.parquet", "payload_tokens.npy", "payload_index.npy", "placements.parquet", "reserved.parquet", "tokenizer"} <= names
    placements = plan.placements()
    assert check_placements(placements, seq_len=plan.seq_len, n_sequences=plan.n_sequences) is None
    items = plan.items()
    eos = plan.meta["corpus"]["eos_id"]
    # every insertion covers EOS + payload + EOS
    lengths = np.diff(plan.payload[1])
    np.testing.assert_array_equal(placements["n_tokens"], lengths[placements["item_index"]] + 2)
    assert eos not in plan.payload[0][:]
    # exactly the treated, inserted items are placed, dose times each
    counts = placements.groupby("item_index").size()
    inserted = items[items["inserted"]]
    assert counts.reindex(inserted["item_index"]).tolist() == inserted["dose"].tolist()
    assert not items.loc[~items["inserted"], "item_index"].isin(placements["item_index"]).any()
    assert (placements["item_id"].astype(str).to_numpy() == items["item_id"].to_numpy()[placements["item_index"]]).all()


def test_edited_plan_file_is_refused(tmp_path, design_file):
    make_plan(design_file, tmp_path / "p", show_progress=False)
    target = tmp_path / "p" / "placements.parquet"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(InputError, match="placements.parquet.*edited"):
        Plan.open(tmp_path / "p")


def test_added_file_is_refused(tmp_path, design_file):
    make_plan(design_file, tmp_path / "p", show_progress=False)
    (tmp_path / "p" / "extra.txt").write_text("x")
    with pytest.raises(InputError, match="extra.txt"):
        Plan.open(tmp_path / "p")


def test_existing_plan_is_not_overwritten_without_force(tmp_path, design_file):
    make_plan(design_file, tmp_path / "p", show_progress=False)
    before = _tree_bytes(tmp_path / "p")
    with pytest.raises(InputError, match="--force"):
        make_plan(design_file, tmp_path / "p", show_progress=False)
    assert _tree_bytes(tmp_path / "p") == before
    make_plan(design_file, tmp_path / "p", force=True, show_progress=False)


def test_plan_json_records_budget_power_and_geometry(tiny_plan):
    meta = json.loads((tiny_plan / "plan.json").read_text())
    geo = meta["geometry"]
    assert geo["n_sequences"] == geo["steps"] * geo["global_batch"]
    assert geo["total_tokens"] == geo["n_sequences"] * geo["seq_len"]
    budget = meta["budget"]
    assert budget["injected_tokens"] == sum(r["tokens"] for r in budget["rows"])
    assert budget["injected_fraction"] <= budget["max_injected_fraction"]
    assert {(r["experiment"], r["arm"]) for r in meta["power"]} == {("bench", "x4"), ("canary", "x3")}
    assert all(r["mde_effect_size"] > 0 for r in meta["power"])
    assert meta["training"]["checkpoint_steps"] == [0, 20, 40]


def test_a_design_of_placebos_only_plans_no_edits(tmp_path, tiny_corpus):
    design = tiny_design(tiny_corpus)
    for exp in design["experiments"]:
        exp["placebo"] = True
    make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    assert len(plan.placements()) == 0
    assert plan.meta["budget"]["injected_tokens"] == 0


def test_positions_in_the_items_file_place_treated_items_exactly_there(tmp_path, tiny_corpus):
    records = [{"text": f"Record {i} about a quiet lighthouse.", "positions": [10 + i, 200 + i]} for i in range(6)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "texts", "kind": "texts", "items": str(tmp_path / "t.jsonl"),
                              "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}]
    make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items = plan.items().set_index("item_index")
    for item_index, group in plan.placements().groupby("item_index"):
        i = int(items.loc[item_index, "item_id"].split("/")[1])
        assert sorted(group["global_seq"]) == [10 + i, 200 + i]
    assert len(plan.placements()) == 6


def test_positions_that_do_not_match_the_dose_are_refused(tmp_path, tiny_corpus):
    records = [{"text": f"Record {i}.", "positions": [5]} for i in range(4)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "texts", "kind": "texts", "items": str(tmp_path / "t.jsonl"),
                              "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}]
    with pytest.raises(InputError, match="positions.*expected 2 global sequence indices"):
        make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
