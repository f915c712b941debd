"""plan-interference: sub-plans keep the parent's items, continue its stream, switch subsets on."""

from __future__ import annotations

import numpy as np
import pytest
from fake_parent import canary_experiments, fake_checkpoint, make_parent

from designkit.cli import main
from designkit.errors import InputError
from designkit.planning.interference import InterferenceDir, alias_table, design_resolution, factorial_matrix, plan_interference
from designkit.planning.planfile import Plan


@pytest.fixture(scope="module")
def parent(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("interference-parent")
    plan = make_parent(root, tiny_corpus)
    return plan, fake_checkpoint(root / "run", plan, 20)


@pytest.fixture(scope="module")
def eight(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("interference-eight")
    plan = make_parent(root, tiny_corpus, canary_experiments(8))
    return plan, fake_checkpoint(root / "run", plan, 10)


def test_one_at_a_time_has_none_each_alone_and_all(parent, tmp_path):
    plan, ckpt = parent
    inter = plan_interference(plan, ckpt, tmp_path / "i", steps=10, design="one-at-a-time", share=0.02)
    assert [(r["name"], r["on"]) for r in inter.runs] == [
        ("none", []), ("only-bench", ["bench"]), ("only-canary", ["canary"]), ("all", ["bench", "canary"])
    ]


def test_subplans_keep_items_and_arms_and_continue_the_stream(parent, tmp_path):
    plan, ckpt = parent
    inter = plan_interference(plan, ckpt, tmp_path / "i", steps=10, design="one-at-a-time", share=0.02)
    parent_plan = Plan.open(plan)
    placements = {}
    for run in inter.runs:
        sub = Plan.open(inter.plan_dir(run["name"]))
        assert sub.meta["geometry"]["stream_offset"] == 20 * parent_plan.global_batch
        assert sub.steps == 10 and sub.meta["training"]["seed"] == parent_plan.meta["training"]["seed"]
        for column in ("item_index", "item_id", "experiment", "arm"):
            assert sub.items()[column].tolist() == parent_plan.items()[column].tolist()
        frame = sub.placements().merge(sub.items()[["item_index", "experiment"]], on="item_index")
        assert set(frame["experiment"]) == set(run["on"])
        inserted = set(sub.items().loc[sub.items()["inserted"], "experiment"])
        assert inserted == set(run["on"])
        for name, rows in frame.groupby("experiment"):
            placements.setdefault(name, []).append(rows[["global_seq", "offset", "item_index"]].to_numpy())
    for name, frames in placements.items():  # an experiment sits at the same positions in every run
        assert all(np.array_equal(frames[0], f) for f in frames[1:]), name


def test_share_sets_each_experiments_token_share(parent, tmp_path):
    plan, ckpt = parent
    inter = plan_interference(plan, ckpt, tmp_path / "i", steps=120, design="one-at-a-time", share=0.03)
    sub = Plan.open(inter.plan_dir("all"))
    shares = {row["experiment"]: 0.0 for row in sub.meta["budget"]["rows"]}
    for row in sub.meta["budget"]["rows"]:
        shares[row["experiment"]] += row["share_of_run"]
    assert shares["bench"] == pytest.approx(0.03, rel=0.2) and shares["canary"] == pytest.approx(0.03, rel=0.2)


def test_same_inputs_give_byte_identical_subplans(parent, tmp_path):
    plan, ckpt = parent
    a = plan_interference(plan, ckpt, tmp_path / "a", steps=10, design="one-at-a-time", share=0.02)
    b = plan_interference(plan, ckpt, tmp_path / "b", steps=10, design="one-at-a-time", share=0.02)
    assert [r["plan_hash"] for r in a.runs] == [r["plan_hash"] for r in b.runs]


def test_replicates_change_only_the_base_data_seed(parent, tmp_path):
    plan, ckpt = parent
    inter = plan_interference(plan, ckpt, tmp_path / "i", steps=10, design="one-at-a-time", share=0.02, replicates=2)
    assert len(inter.runs) == 8
    r0, r1 = Plan.open(inter.plan_dir("none-r0")), Plan.open(inter.plan_dir("none-r1"))
    assert r0.meta["training"]["seed"] != r1.meta["training"]["seed"]
    assert r0.meta["geometry"] == r1.meta["geometry"]


def test_factorial_over_eight_experiments_uses_16_runs_at_resolution_iv_and_prints_aliases(eight, tmp_path, capsys):
    plan, ckpt = eight
    code = main(["plan-interference", str(plan), "--from-checkpoint", str(ckpt), "--steps", "8",
                 "--design", "factorial", "--share", "0.005", "--out", str(tmp_path / "f")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    inter = InterferenceDir.open(tmp_path / "f")
    assert len(inter.runs) <= 16
    matrix = np.array(inter.meta["factor_matrix"])
    assert design_resolution(matrix) >= 4 and inter.meta["resolution"] >= 4
    assert "16 runs" in out and "resolution IV" in out and "alias structure" in out
    # resolution IV: two-way interactions are aliased with each other, never with a main effect
    chains = inter.meta["alias_table"]
    assert chains and all(len(term.split(":")) != 1 for chain in chains for term in chain if ":" in chain[0])
    assert any(" = ".join(chain) in out for chain in chains)
    for run, row in zip(inter.runs, matrix):
        assert run["on"] == [f"c{i}" for i in range(8) if row[i] > 0]


def test_factorial_resolution_v_keeps_two_way_interactions_apart():
    # pyDOE3's fracfact_by_res(7, 5) is only of resolution IV: the checked fallback must find V
    matrix, how = factorial_matrix(7, 5)
    assert design_resolution(matrix) >= 5 and "fracfact_opt" in how and len(matrix) == 64
    names = [f"c{i}" for i in range(7)]
    assert all(max(len(t.split(":")) for t in chain) > 2 for chain in alias_table(matrix, names))


def test_checkpoint_of_another_plan_is_refused(parent, eight, tmp_path):
    plan, _ = parent
    _, other_ckpt = eight
    with pytest.raises(InputError, match="plan_hash"):
        plan_interference(plan, other_ckpt, tmp_path / "i", steps=10)
    assert not (tmp_path / "i").exists()


def test_existing_directory_is_not_replaced_without_force(parent, tmp_path):
    plan, ckpt = parent
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "mine.txt").write_text("user data")
    with pytest.raises(InputError, match="--force"):
        plan_interference(plan, ckpt, tmp_path / "i", steps=10)
    with pytest.raises(InputError, match="interference.json"):
        plan_interference(plan, ckpt, tmp_path / "i", steps=10, force=True)
    assert (tmp_path / "i" / "mine.txt").read_text() == "user data"
