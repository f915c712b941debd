from designkit.cli import main
from designkit.planning import Plan


def test_plan_prints_a_summary_table_and_inspect_shows_edits(tmp_path, design_file, capsys):
    out = tmp_path / "plan"
    assert main(["plan", str(design_file), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    for needle in ("bench", "canary", "share of run", "MDE", "injected:", "leakage (13-grams"):
        assert needle in text
    plan = Plan.open(out)
    first = plan.placements().iloc[0]
    assert main(["inspect", str(out), "--seq", str(int(first.global_seq))]) == 0
    shown = capsys.readouterr().out
    assert str(first.item_id) in shown and f"step {int(first.global_seq) // plan.global_batch}" in shown
    assert main(["inspect", str(out), "--item", str(first.item_id)]) == 0
    shown = capsys.readouterr().out
    assert "repetition" in shown and str(int(first.global_seq)) in shown


def test_inspect_rejects_unknown_item_and_out_of_range_sequence(tiny_plan, capsys):
    assert main(["inspect", str(tiny_plan), "--item", "nope/1"]) == 2
    assert "--item" in capsys.readouterr().err
    assert main(["inspect", str(tiny_plan), "--seq", "10000000"]) == 2
    assert "--seq" in capsys.readouterr().err
