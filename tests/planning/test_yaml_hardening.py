"""User YAML is read as bounded data: alias bombs, duplicate keys and non-UTF-8 bytes are one line.

Every YAML file a user hands designkit (a design, a checkpoint's ``model_config.yaml``) is
read by ``designkit.yaml_files.load``. Values quoted back in an error are capped, so an
error can never be bigger than a line.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest
from tiny_designs import tiny_design, write_design

from designkit import yaml_files
from designkit.errors import QUOTE_LIMIT, InputError, expected, quote


def _bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs inside one key: ``name`` is a list whose last element expands to width**levels strings."""
    anchors = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        anchors.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "name: [" + ", ".join(anchors) + "]\n"


def _limit_memory() -> None:
    gib = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (3 * gib, 3 * gib))


def test_a_billion_laughs_design_is_refused_within_seconds_and_little_memory(tmp_path):
    design = tmp_path / "design.yaml"
    design.write_text(_bomb(), encoding="utf-8")
    start = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "designkit.cli", "plan", str(design), "--out", str(tmp_path / "plan"), "--quiet"],
            capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb was still being expanded after 60 s")
    seconds = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and str(design) in lines[0] and "alias" in lines[0], result.stderr[-2000:]
    assert seconds < 30
    assert not (tmp_path / "plan").exists()


def test_recursive_aliases_are_refused(tmp_path):
    design = tmp_path / "design.yaml"
    design.write_text("name: &a [*a]\n", encoding="utf-8")
    with pytest.raises(InputError, match="alias"):
        yaml_files.load(design)


def test_a_few_aliases_reusing_a_block_still_load(tmp_path):
    path = tmp_path / "design.yaml"
    path.write_text("arms: &arms {control: {dose: 0, share: 0.5}, x4: {dose: 4, share: 0.5}}\nagain: *arms\n", encoding="utf-8")
    data = yaml_files.load(path)
    assert data["again"] == data["arms"] == {"control": {"dose": 0, "share": 0.5}, "x4": {"dose": 4, "share": 0.5}}


def test_a_duplicate_steps_key_is_refused_naming_run_steps(tmp_path, tiny_corpus, capsys):
    from designkit.cli import main

    design = write_design(tmp_path / "design.yaml", tiny_design(tiny_corpus))
    text = design.read_text(encoding="utf-8")
    assert "  steps: 40\n" in text
    design.write_text(text.replace("  steps: 40\n", "  steps: 40\n  steps: 4000\n"), encoding="utf-8")
    assert main(["plan", str(design), "--out", str(tmp_path / "plan"), "--quiet"]) == 2
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1
    assert f"{design}: run.steps: " in line
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("a: 1\na: 2\n", "a"),
        ("experiments:\n  - name: x\n    arms: {c: 1, c: 2}\n", "experiments[0].arms.c"),
        ("run: {model: {config: {n_layer: 2}, config: {n_layer: 3}}}\n", "run.model.config"),
    ],
)
def test_duplicate_keys_are_refused_with_their_key_path(tmp_path, text, path):
    file = tmp_path / "design.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        yaml_files.load(file)
    assert info.value.field == path and "once" in info.value.detail


def test_merge_keys_may_override_what_they_merge(tmp_path):
    file = tmp_path / "design.yaml"
    file.write_text("base: &b {dose: 1, share: 0.5}\narm: {<<: *b, dose: 4}\n", encoding="utf-8")
    assert yaml_files.load(file)["arm"] == {"dose": 4, "share": 0.5}


def test_non_utf8_bytes_are_one_line_naming_the_offset(tmp_path):
    file = tmp_path / "design.yaml"
    file.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(InputError, match="UTF-8") as info:
        yaml_files.load(file)
    assert info.value.file == str(file) and "9" in str(info.value)


def test_a_model_config_yaml_alias_bomb_is_refused(tmp_path):
    from designkit.model_config import checkpoint_config

    (tmp_path / "model_config.yaml").write_text(_bomb(levels=8).replace("name:", "n_layer:"), encoding="utf-8")
    with pytest.raises(InputError, match="alias"):
        checkpoint_config(tmp_path)


def test_quoted_values_are_capped_at_about_80_characters():
    assert len(quote("x" * 10_000)) <= QUOTE_LIMIT
    nested = [[["deep"] * 1000] * 1000] * 1000  # a billion elements by reference, as aliases build them
    start = time.monotonic()
    message = str(expected("f.yaml", "name", "a string", nested))
    assert time.monotonic() - start < 1 and len(message) < 140


def test_schema_errors_quote_long_values_capped(tmp_path, tiny_corpus):
    from designkit.design import load_design

    design = write_design(tmp_path / "design.yaml", tiny_design(tiny_corpus, **{"run.steps": "y" * 5000}))
    with pytest.raises(InputError) as info:
        load_design(design)
    assert info.value.field == "run.steps" and "y" * (QUOTE_LIMIT + 1) not in str(info.value)
