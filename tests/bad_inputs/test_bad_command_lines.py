"""Command-line misuse: argparse's refusals and option values are one ``designkit: error:`` line too."""

from __future__ import annotations

import pytest

from .harness import refused

# id: (argv after `designkit`, what the message names first (the command), key)
MISUSE = {
    "no_command": ([], "designkit", "COMMAND"),
    "unknown_command": (["planify", "design.yaml"], "designkit", "planify"),
    "plan_without_out": (["plan", "design.yaml"], "designkit plan", "--out"),
    "plan_without_design": (["plan", "--out", "p"], "designkit plan", "design"),
    "plan_unknown_option": (["plan", "design.yaml", "--out", "p", "--fast"], "designkit", "--fast"),
    "prepare_without_tokenizer_choice": (["prepare-corpus", "docs.jsonl", "--out", "c"], "designkit prepare-corpus", "--tokenizer"),
    "prepare_with_both_tokenizers": (["prepare-corpus", "docs.jsonl", "--out", "c", "--tokenizer", "t", "--train-tokenizer", "400"], "designkit prepare-corpus", "--train-tokenizer"),
    "prepare_vocab_not_a_number": (["prepare-corpus", "docs.jsonl", "--out", "c", "--train-tokenizer", "lots"], "designkit prepare-corpus", "--train-tokenizer"),
    "inspect_seq_and_item": (["inspect", "p", "--seq", "1", "--item", "a/1"], "designkit inspect", "--item"),
    "train_without_out": (["train", "p"], "designkit train", "--out"),
    "train_num_nodes_not_a_number": (["train", "p", "--out", "r", "--num-nodes", "two"], "designkit train", "--num-nodes"),
    "score_two_runs": (["score", "r1", "r2"], "designkit", "r2"),
    "analyze_without_out": (["analyze", "r"], "designkit analyze", "--out"),
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_command_line_misuse_is_one_line(case, tmp_path, capsys, monkeypatch):
    argv, file, key = MISUSE[case]
    monkeypatch.chdir(tmp_path)
    refused(argv, capsys, tmp_path, file=file, key=key)


OUTPUTS = {
    "plan_out_under_proc": (lambda r, d: ["plan", d, "--out", "/proc/designkit-plan", "--quiet"], "/proc/designkit-plan", "--out"),
    "plan_out_is_a_file": (lambda r, d: ["plan", d, "--out", _file(r / "plan"), "--quiet"], "plan", "--out"),
    "plan_force_on_user_dir": (lambda r, d: ["plan", d, "--out", _user_dir(r), "--force", "--quiet"], "mydocs", None),
    "demo_out_under_proc": (lambda r, d: ["demo", "--out", "/proc/designkit-demo", "--quiet"], "/proc/designkit-demo", "--out"),
}


def _user_dir(root):
    folder = root / "mydocs"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    return folder


def _file(path):
    path.write_text("my notes\n")
    return path


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_unwritable_output_is_refused_before_work(case, tmp_path, valid_design, capsys):
    from .harness import write_yaml

    build, file, key = OUTPUTS[case]
    design = write_yaml(tmp_path / "design.yaml", valid_design)
    refused(build(tmp_path, design), capsys, tmp_path, file=file, key=key)
