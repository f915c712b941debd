"""designs/paper-ten.yaml: the paper's cluster-scale design plans with a corpus given on the
command line, and a run far larger than its corpus is warned about on one stderr line."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import yaml

from designkit.cli import main

PAPER_TEN = Path(__file__).resolve().parents[2] / "designs" / "paper-ten.yaml"
SMALL_ITEMS = {"contamination": 50, "canaries": 10, "knowledge": 20, "placebo": 20}


def scaled_down(tmp_path: Path) -> Path:
    """paper-ten with its arms, doses and kinds kept and everything else CPU-sized."""
    design = yaml.safe_load(PAPER_TEN.read_text())
    small = copy.deepcopy(design)
    config = small["run"]["model"]["config"]
    for key in ("vocab_size", "padded_vocab_size"):
        config.pop(key)
    config.update(n_layer=2, n_embd=64, n_head=2, n_query_groups=2, intermediate_size=128, block_size=128)
    # 1,500 steps × 16 sequences × 129 tokens read the ~310k training tokens of the tiny corpus ~10 times
    small["run"].update(seq_len=128, global_batch=16, steps=1500)
    small["run"]["training"].update(warmup_steps=10, checkpoints=2, micro_batch_size=4)
    small["leakage"] = {"max_corpus_tokens": 20000}
    for exp in small["experiments"]:
        exp["items"]["generate"]["n"] = SMALL_ITEMS[exp["name"]]
        if exp["kind"] == "knowledge":
            exp["params"].update(every=300, slots_per_interval=64)
    assert [e["arms"] for e in small["experiments"]] == [e["arms"] for e in design["experiments"]]
    path = tmp_path / "paper-ten-small.yaml"
    path.write_text(yaml.safe_dump(small, sort_keys=False))
    return path


def test_paper_ten_geometry_is_the_papers_210b_tokens_on_a_1_5b_model():
    from designkit import model_config
    from designkit.design import ModelSpec

    run = yaml.safe_load(PAPER_TEN.read_text())["run"]
    tokens = run["seq_len"] * run["global_batch"] * run["steps"]
    assert 205e9 <= tokens <= 215e9 and run["seq_len"] == 4096
    config = model_config.resolve(ModelSpec(config=run["model"]["config"]), None)
    assert 1.4e9 <= model_config.parameter_count(config) <= 1.6e9


def test_scaled_paper_ten_plans_with_corpus_override_and_warns_once_about_epochs(tmp_path, tiny_corpus, capsys):
    out = tmp_path / "plan"
    assert main(["plan", str(scaled_down(tmp_path)), "--corpus", str(tiny_corpus), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    meta = json.loads((out / "plan.json").read_text())
    assert meta["corpus"]["path"] == str(tiny_corpus.resolve())
    assert [e["name"] for e in meta["experiments"]] == list(SMALL_ITEMS)
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, captured.err
    times = float(re.search(r"about ([\d,.]+) times", warnings[0]).group(1).replace(",", ""))
    epochs = meta["geometry"]["corpus_epochs"]
    assert epochs > 4 and times == round(epochs, 1)
    assert "share of run" in captured.out


def test_a_run_within_a_few_epochs_is_not_warned_about(tmp_path, design_file, capsys):
    assert main(["plan", str(design_file), "--out", str(tmp_path / "plan"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert meta["geometry"]["corpus_epochs"] <= 4
    assert "times" not in capsys.readouterr().err


def test_paper_ten_without_a_corpus_is_refused_in_one_line(tmp_path, capsys):
    assert main(["plan", str(PAPER_TEN), "--out", str(tmp_path / "plan"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.corpus" in err[0]
    assert not (tmp_path / "plan").exists()
