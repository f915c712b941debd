import json

import pytest
from tiny_designs import edit_design, tiny_design, write_design

from designkit.cli import main
from designkit.data.corpus import TokenCorpus
from designkit.planning import make_plan


@pytest.fixture(scope="module")
def leaky_plan(tmp_path_factory, tiny_corpus):
    """A plan whose texts quote corpus passages (at several places of the training region) and fresh text."""
    root = tmp_path_factory.mktemp("leaky-plan")
    corpus = TokenCorpus.open(tiny_corpus)
    tokenizer = corpus.tokenizer()
    quoted = [tokenizer.decode(corpus.tokens[at : at + 40].tolist()) for at in (500, 40_000, 90_000)]
    fresh = ["Seven amber herons argued quietly over cold plum soup.", "Forty jugglers rehearsed backwards in an abandoned velodrome."]
    (root / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in [*quoted, *fresh]) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [
        {"name": "texts", "kind": "texts", "items": str(root / "a.jsonl"), "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}
    ]
    design["leakage"] = {"max_corpus_tokens": 1}  # the planner samples; leakage-scan reads everything
    make_plan(write_design(root / "d.yaml", design), root / "plan", show_progress=False)
    return root / "plan"


def _run(*argv):
    return main([str(a) for a in argv])


def test_sharded_scan_merged_equals_single_process_scan(leaky_plan, tmp_path):
    assert _run("leakage-scan", leaky_plan, "--out", tmp_path / "one.json", "--quiet") == 0
    single = json.loads((tmp_path / "one.json").read_text())
    assert single["items_in_corpus"] == 3 and single["corpus_tokens_scanned"] == single["corpus_tokens_total"]
    shards = [tmp_path / f"shard{i}.json" for i in range(3)]
    for i, shard in enumerate(shards):
        workers = "2" if i == 1 else "1"
        assert _run("leakage-scan", leaky_plan, "--shard", f"{i}/3", "--workers", workers, "--out", shard, "--quiet") == 0
    assert _run("leakage-scan", leaky_plan, "--merge", *reversed(shards), "--out", tmp_path / "merged.json") == 0
    assert json.loads((tmp_path / "merged.json").read_text()) == single
    assert _run("leakage-scan", leaky_plan, "--workers", "2", "--out", tmp_path / "two.json", "--quiet") == 0
    assert json.loads((tmp_path / "two.json").read_text()) == single


@pytest.mark.parametrize("spec", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_spec_is_one_line_error(leaky_plan, tmp_path, capsys, spec):
    assert _run("leakage-scan", leaky_plan, f"--shard={spec}", "--out", tmp_path / "s.json") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shard: expected I/N" in err
    assert not (tmp_path / "s.json").exists()


def test_merge_refuses_shards_of_another_plan_or_an_incomplete_set(leaky_plan, tiny_plan, tmp_path, capsys):
    for i in range(2):
        assert _run("leakage-scan", leaky_plan, "--shard", f"{i}/2", "--out", tmp_path / f"s{i}.json", "--quiet") == 0
    assert _run("leakage-scan", tiny_plan, "--merge", tmp_path / "s0.json", tmp_path / "s1.json", "--out", tmp_path / "r.json") == 2
    assert "plan_hash: expected" in capsys.readouterr().err
    assert _run("leakage-scan", leaky_plan, "--merge", tmp_path / "s0.json", "--out", tmp_path / "r.json") == 2
    assert "shard 1/2 is missing" in capsys.readouterr().err
    assert _run("leakage-scan", leaky_plan, "--merge", tmp_path / "s0.json", tmp_path / "s0.json", "--out", tmp_path / "r.json") == 2
    assert "given twice" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text('{"format": "designkit-leakage-shard/1"')
    assert _run("leakage-scan", leaky_plan, "--merge", tmp_path / "s0.json", tmp_path / "junk.json") == 2
    assert "expected a JSON shard file" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_force_replaces_only_designkit_leakage_files(leaky_plan, tmp_path, capsys):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    assert _run("leakage-scan", leaky_plan, "--out", mine, "--quiet") == 2
    assert _run("leakage-scan", leaky_plan, "--out", mine, "--force", "--quiet") == 2
    assert mine.read_text() == '{"my": "notes"}'
    report = tmp_path / "report.json"
    assert _run("leakage-scan", leaky_plan, "--out", report, "--quiet") == 0
    assert _run("leakage-scan", leaky_plan, "--out", report, "--force", "--quiet") == 0


@pytest.mark.parametrize("which", ["tiny", "edits"])
def test_full_scan_report_equals_the_planners_unsampled_report(which, tiny_plan, tiny_corpus, tmp_path):
    """Remove/noise items are corpus windows by construction: neither scan counts them as leaked."""
    plan = tiny_plan
    if which == "edits":
        plan = tmp_path / "plan"
        make_plan(write_design(tmp_path / "d.yaml", edit_design(tiny_corpus)), plan, show_progress=False)
    assert _run("leakage-scan", plan, "--workers", "2", "--out", tmp_path / "r.json", "--quiet") == 0
    report = json.loads((tmp_path / "r.json").read_text())
    planned = json.loads((plan / "plan.json").read_text())["leakage"]
    assert {k: v for k, v in report.items() if k not in ("format", "plan_hash")} == {k: v for k, v in planned.items() if k != "on_overlap"}
