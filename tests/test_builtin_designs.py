"""Built-in designs (``designkit demo --design NAME``) are the packaged copies of designs/."""

from __future__ import annotations

from pathlib import Path

import pytest

from designkit.demo import BUILTIN_DESIGNS, builtin_design, resolve_design
from designkit.errors import InputError

DESIGNS = Path(__file__).resolve().parents[1] / "designs"


@pytest.mark.parametrize("name", sorted(set(BUILTIN_DESIGNS.values())))
def test_builtin_designs_are_byte_identical_to_the_designs_folder(name):
    assert builtin_design(name).read_bytes() == (DESIGNS / f"{name}.yaml").read_bytes()


def test_demo_design_names_resolve_to_the_packaged_files(tmp_path):
    assert resolve_design(None) == builtin_design("demo")
    assert resolve_design("ten").name == "ten-cpu.yaml" and resolve_design("ten").is_file()
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n")
    assert resolve_design(str(mine)) == mine


def test_an_unknown_design_name_is_refused_naming_the_builtins(tmp_path, capsys):
    from designkit.cli import main

    with pytest.raises(InputError) as refused:
        resolve_design("eleven")
    assert refused.value.field == "--design" and "demo, ten" in refused.value.detail
    assert main(["demo", "--design", "eleven", "--out", str(tmp_path / "demo"), "--quiet"]) == 2
    assert not (tmp_path / "demo").exists()
