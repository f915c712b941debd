"""Whole-sequence and span edits come from the planner: kinds declare remove/noise, the
planner places them first, keeps insertions out, hands out reserve windows and budgets them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_designs import edit_design, write_design

from designkit.errors import InputError
from designkit.planning import Plan, make_plan
from designkit.planning.permutation import BaseOrder
from designkit.planning.placement import check_placements

@pytest.fixture(scope="module")
def edit_plan(tmp_path_factory, tiny_corpus) -> Path:
    root = tmp_path_factory.mktemp("edit-plan")
    make_plan(write_design(root / "design.yaml", edit_design(tiny_corpus)), root / "plan", show_progress=False)
    return root / "plan"


def test_treated_windows_are_edited_wherever_the_run_reads_them_and_controls_never(edit_plan):
    plan = Plan.open(edit_plan)
    items, placements = plan.items(), plan.placements()
    assert check_placements(placements, seq_len=plan.seq_len, n_sequences=plan.n_sequences) is None
    order = BaseOrder(plan.corpus_info.train_tokens // (plan.seq_len + 1), plan.training.seed)
    seq_window = order.window_of(np.arange(plan.n_sequences))
    for experiment, edit in (("removal", "remove"), ("gw_base", "noise")):
        rows = items[items["experiment"] == experiment]
        edits = placements[placements["edit"] == edit]
        assert set(edits["item_index"]) == set(rows.loc[rows["inserted"], "item_index"])
        for row in rows.itertuples():
            window = np.asarray(plan.payload_of(row.item_index))
            reads = np.flatnonzero(seq_window == _window_index(plan, window))
            assert len(reads) >= 1  # kinds draw windows the run reads
            mine = edits.loc[edits["item_index"] == row.item_index, "global_seq"].to_numpy()
            np.testing.assert_array_equal(np.sort(mine), reads if row.inserted else [])
        assert (edits["offset"] == 0).all() and (edits["n_tokens"] == plan.seq_len + 1).all()


def _window_index(plan: Plan, window_tokens: np.ndarray) -> int:
    corpus = plan.corpus()
    width = plan.seq_len + 1
    tokens = np.asarray(corpus.tokens[: plan.corpus_info.train_tokens // width * width]).reshape(-1, width)
    hits = np.flatnonzero((tokens == window_tokens).all(axis=1))
    assert len(hits) == 1
    return int(hits[0])


def test_insertions_avoid_every_sequence_of_a_whole_sequence_item(edit_plan):
    plan = Plan.open(edit_plan)
    items, placements = plan.items(), plan.placements()
    order = BaseOrder(plan.corpus_info.train_tokens // (plan.seq_len + 1), plan.training.seed)
    seq_window = order.window_of(np.arange(plan.n_sequences))
    whole_items = items[items["experiment"].isin(["removal", "gw_base"])]
    windows = [_window_index(plan, np.asarray(plan.payload_of(i))) for i in whole_items["item_index"]]
    owned = np.flatnonzero(np.isin(seq_window, windows))  # treated and control windows alike
    inserts = placements[placements["edit"] == "insert"]
    assert len(inserts) and not np.isin(inserts["global_seq"], owned).any()


def test_every_reserve_window_has_one_named_use(edit_plan):
    plan = Plan.open(edit_plan)
    reserved, placements = plan.reserved(), plan.placements()
    assert reserved["reserve_seq"].is_unique
    assert set(reserved["use"]) == {"removal replacement", "texts excerpts"}
    removals = placements[placements["edit"] == "remove"]
    replaced = reserved[reserved["use"] == "removal replacement"]
    assert sorted(zip(removals["global_seq"], removals["reserve_seq"])) == sorted(zip(replaced["global_seq"], replaced["reserve_seq"]))
    assert (replaced["experiment"] == "removal").all()
    # the texts excerpts are the first tokens of their own reserve windows
    width = plan.seq_len + 1
    reserve = np.asarray(plan.corpus().tokens[plan.corpus_info.train_tokens :])
    excerpts = reserved[reserved["use"] == "texts excerpts"]
    iid = plan.items()[plan.items()["experiment"] == "iid"]
    starts = {int(r) * width for r in excerpts["reserve_seq"]}
    for index in iid["item_index"]:
        payload = np.asarray(plan.payload_of(index))
        assert any(np.array_equal(reserve[s : s + len(payload)], payload) for s in starts)


def test_span_noise_rides_on_each_repetition_of_an_inserted_item_with_one_seed_per_item(edit_plan):
    plan = Plan.open(edit_plan)
    items, placements = plan.items(), plan.placements()
    marked = placements[placements["item_index"].isin(items.loc[items["experiment"] == "watermark", "item_index"])]
    assert (marked["edit"] == "insert").all() and len(marked) == 3 * 3
    assert np.allclose(marked["noise_std"], 0.5) and (marked["noise_seed"] >= 0).all()
    seeds = marked.groupby("item_index")["noise_seed"].nunique()
    assert (seeds == 1).all() and marked.groupby("item_index")["noise_seed"].first().is_unique
    others = placements[~placements.index.isin(marked.index) & (placements["edit"] != "noise")]
    assert (others["noise_std"] == 0).all() and (others["noise_seed"] == -1).all()
    noise = placements[placements["edit"] == "noise"]
    assert np.allclose(noise["noise_std"], 0.5) and (noise.groupby("item_index")["noise_seed"].nunique() == 1).all()


def test_budget_counts_sequences_removed_or_noised_as_a_share_of_the_run(edit_plan):
    plan = Plan.open(edit_plan)
    budget, placements = plan.meta["budget"], plan.placements()
    whole = int(placements["edit"].isin(["remove", "noise"]).sum())
    assert budget["edited_sequences"] == whole and budget["edited_sequence_fraction"] == whole / plan.n_sequences
    rows = {(r["experiment"], r["arm"]): r for r in budget["rows"]}
    assert rows[("removal", "treated")]["edited_sequences"] == int((placements["edit"] == "remove").sum())
    assert rows[("removal", "control")]["edited_sequences"] == 0
    assert rows[("removal", "treated")]["tokens"] == 0  # removal injects nothing
    assert rows[("watermark", "x3")]["edited_sequences"] == 0 and rows[("watermark", "x3")]["tokens"] > 0


def test_a_noise_kind_without_a_noise_std_is_refused(tmp_path, tiny_corpus):
    design = write_design(tmp_path / "d.yaml", edit_design(tiny_corpus, noise_std=0.0))
    with pytest.raises(InputError, match=r"experiments\[1\].params: expected a positive noise std"):
        make_plan(design, tmp_path / "plan", show_progress=False)
    assert not (tmp_path / "plan").exists()


def test_same_design_gives_the_same_whole_sequence_plan(edit_plan, tmp_path, tiny_corpus):
    again = make_plan(write_design(tmp_path / "d.yaml", edit_design(tiny_corpus)), tmp_path / "plan", show_progress=False)
    for name in ("placements.parquet", "reserved.parquet", "items.parquet"):
        assert (tmp_path / "plan" / name).read_bytes() == (edit_plan / name).read_bytes()
    assert again.plan_hash


def test_plan_summary_reports_sequences_removed_or_noised(edit_plan, tiny_plan):
    from designkit.planning.summary import format_summary

    plan = Plan.open(edit_plan)
    text = format_summary(plan.meta, plan.hash)
    assert f"removed or noised: {plan.meta['budget']['edited_sequences']:,} sequences" in text
    assert "sequences removed/noised" in text
    plain = Plan.open(tiny_plan)
    assert "removed or noised" not in format_summary(plain.meta, plain.hash)
