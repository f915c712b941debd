"""``--force`` replaces only designkit's own artefacts: a user's folder survives every command.

Each artefact directory type has a marker file with a format string (``plan.json``,
``corpus.json``, ``run.json``, ``results.json``, ``interference.json``, ``demo.json``);
``designkit.artefacts.check_output`` lets ``--force`` replace a directory only when it holds
the marker of the same type. Everything else, the user's documents, another artefact type
or a file, is refused with one line and left byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.errors import InputError


def _user_folder(path: Path) -> Path:
    (path / "chapter1").mkdir(parents=True)
    (path / "thesis.tex").write_text("\\documentclass{article}\n", encoding="utf-8")
    (path / "chapter1" / "notes.md").write_text("# keep me\n", encoding="utf-8")
    (path / "data.bin").write_bytes(bytes(range(256)))
    return path


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def _refused(capsys, argv: list, root: Path) -> str:
    before = _tree(root)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert _tree(root) == before, "a refused --force changed the user's files"
    return lines[0]


@pytest.fixture
def design(tmp_path, tiny_corpus) -> Path:
    return write_design(tmp_path / "design.yaml", tiny_design(tiny_corpus))


def test_plan_force_keeps_a_users_folder(tmp_path, design, capsys):
    mine = _user_folder(tmp_path / "mydocs")
    line = _refused(capsys, ["plan", design, "--out", mine, "--force", "--quiet"], tmp_path)
    assert str(mine) in line and "plan.json" in line


def test_prepare_corpus_force_keeps_a_users_folder(tmp_path, capsys):
    source = tmp_path / "src.txt"
    source.write_text("hello world\n" * 50, encoding="utf-8")
    mine = _user_folder(tmp_path / "mydocs")
    line = _refused(capsys, ["prepare-corpus", source, "--out", mine, "--train-tokenizer", 400, "--force", "--quiet"], tmp_path)
    assert str(mine) in line and "corpus.json" in line


def test_train_force_keeps_a_users_folder(tmp_path, tiny_plan, capsys):
    mine = _user_folder(tmp_path / "mydocs")
    line = _refused(capsys, ["train", tiny_plan, "--out", mine, "--force", "--quiet"], tmp_path)
    assert str(mine) in line and "run.json" in line


def test_analyze_force_keeps_a_users_folder(tmp_path, capsys):
    mine = _user_folder(tmp_path / "mydocs")
    run = tmp_path / "run"
    run.mkdir()
    line = _refused(capsys, ["analyze", run, "--out", mine, "--force", "--quiet"], tmp_path)
    assert str(mine) in line and "results.json" in line


def test_demo_force_keeps_a_users_folder_and_its_subfolders(tmp_path, design, capsys):
    mine = _user_folder(tmp_path / "mydocs")
    _user_folder(mine / "plan")  # demo writes mydocs/plan: the user's own plan/ must survive too
    line = _refused(capsys, ["demo", "--out", mine, "--design", design, "--force", "--quiet"], tmp_path)
    assert str(mine) in line and "demo.json" in line


def test_force_never_replaces_another_artefact_type(tmp_path, design, tiny_corpus, capsys):
    corpus_copy = tmp_path / "corpus"
    corpus_copy.mkdir()
    (corpus_copy / "corpus.json").write_bytes((tiny_corpus / "corpus.json").read_bytes())
    line = _refused(capsys, ["plan", design, "--out", corpus_copy, "--force", "--quiet"], tmp_path)
    assert "corpus" in line


def test_a_marker_with_the_wrong_format_is_not_designkits(tmp_path):
    from designkit import artefacts

    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "plan.json").write_text(json.dumps({"format": "someone-else/1"}), encoding="utf-8")
    assert artefacts.kind_of(fake) is None
    with pytest.raises(InputError, match="plan.json"):
        artefacts.check_output(fake, "plan", force=True)
    (fake / "plan.json").write_text("[1, 2", encoding="utf-8")
    assert artefacts.kind_of(fake) is None


def test_force_replaces_a_plan_with_a_plan(tmp_path, design, tiny_plan, capsys):
    out = tmp_path / "plan"
    assert main(["plan", str(design), "--out", str(out), "--quiet"]) == 0
    (tmp_path / "design.yaml").write_text(design.read_text().replace("seed: 3", "seed: 4"), encoding="utf-8")
    assert main(["plan", str(design), "--out", str(out), "--quiet"]) == 2
    assert main(["plan", str(design), "--out", str(out), "--force", "--quiet"]) == 0
    assert json.loads((out / "plan.json").read_text())["seed"] == 4


def test_an_output_that_is_a_file_is_refused_by_every_command(tmp_path, design, tiny_plan, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine\n", encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    for argv in (
        ["plan", design, "--out", taken, "--force", "--quiet"],
        ["train", tiny_plan, "--out", taken, "--force", "--quiet"],
        ["analyze", run, "--out", taken, "--force", "--quiet"],
        ["demo", "--out", taken, "--design", design, "--force", "--quiet"],
    ):
        line = _refused(capsys, argv, tmp_path)
        assert str(taken) in line, argv


def test_demo_force_replaces_a_demo_dir_by_its_marker_or_its_parts(tmp_path, tiny_plan):
    import shutil

    from designkit import artefacts

    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / "demo.json").write_text(json.dumps({"format": artefacts.DEMO_FORMAT}), encoding="utf-8")
    (marked / "plan").mkdir()
    assert artefacts.check_output(marked, "demo", force=True)
    older = tmp_path / "older"  # written before demo.json existed: only its own plan/run/report
    shutil.copytree(tiny_plan, older / "plan")
    assert artefacts.check_output(older, "demo", force=True)
    (older / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(InputError, match="demo.json"):
        artefacts.check_output(older, "demo", force=True)


def test_analyze_interference_force_keeps_a_users_folder(tmp_path, capsys):
    mine = _user_folder(tmp_path / "mydocs")
    line = _refused(capsys, ["analyze-interference", tmp_path / "interference", "--out", mine, "--force", "--quiet"], tmp_path)
    assert str(mine) in line and "interference.json" in line
