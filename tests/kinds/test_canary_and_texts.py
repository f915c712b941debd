import json

import numpy as np
from tiny_designs import tiny_design, write_design

from designkit.planning import Plan, make_plan


def test_canaries_are_random_non_special_tokens_stored_exactly(tiny_plan):
    plan = Plan.open(tiny_plan)
    items = plan.probe_rows()
    canaries = items[items["experiment"] == "canary"]
    eos = plan.meta["corpus"]["eos_id"]
    for row in canaries.itertuples():
        payload = plan.payload_of(row.item_index).tolist()
        assert len(payload) == 16 and eos not in payload
        assert list(row.probe_tokens) == payload
        assert list(row.prompt_tokens) + list(row.target_tokens) == payload
        assert len(row.prompt_tokens) == 4
        # the order-memorization control: the same tokens, in another order
        assert sorted(row.alt_probe_tokens) == sorted(payload)
    assert any(list(r.alt_probe_tokens) != list(r.probe_tokens) for r in canaries.itertuples())


def test_texts_kind_reads_a_custom_key_and_generates_reserve_excerpts(tmp_path, tiny_corpus):
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps({"body": f"Paragraph {i} about owls and thimbles."}) for i in range(6)) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [
        {"name": "file", "kind": "texts", "items": str(tmp_path / "t.jsonl"), "params": {"key": "body"},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}},
        {"name": "iid", "kind": "texts", "items": {"generate": {"n": 10, "n_tokens": 24}},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}},
    ]
    make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items = plan.items()
    assert items.loc[items["experiment"] == "file", "text"].str.startswith("Paragraph").all()
    corpus = plan.corpus()
    train_tokens = plan.meta["corpus"]["train_tokens"]
    reserve = np.asarray(corpus.tokens[train_tokens:])
    for row in items[items["experiment"] == "iid"].itertuples():
        start = json.loads(row.meta)["reserve_offset"]
        np.testing.assert_array_equal(plan.payload_of(row.item_index), reserve[start : start + 24])
    # i.i.d. excerpts come from the reserve region, so the training region never contains them
    assert plan.meta["leakage"]["items_in_corpus"] == 0
