"""Each bad design gives one line naming the file, the key path and what was expected, exit 2."""

import copy
from pathlib import Path

import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main


def _run_plan(tmp_path: Path, design: dict, capsys) -> tuple[int, str]:
    path = write_design(tmp_path / "bad.yaml", design)
    out = tmp_path / "plan"
    code = main(["plan", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert not out.exists(), "a refused plan must write nothing"
    return code, err


def _mutate(design: dict, fn) -> dict:
    design = copy.deepcopy(design)
    fn(design)
    return design


CASES = {
    "shares_not_summing_to_one": (
        lambda d: d["experiments"][0]["arms"]["x4"].update(share=0.4),
        "experiments[0].arms",
        "summing to 1",
    ),
    "duplicate_experiment_name": (
        lambda d: d["experiments"][1].update(name="bench"),
        "experiments[1].name",
        "unique",
    ),
    "unknown_kind": (
        lambda d: d["experiments"][0].update(kind="astrology"),
        "experiments[0].kind",
        "expected one of",
    ),
    "missing_items_file": (
        lambda d: d["experiments"][0].update(items="no/such/items.jsonl"),
        "experiments[0].items",
        "existing",
    ),
    "negative_dose": (
        lambda d: d["experiments"][0]["arms"]["x4"].update(dose=-2),
        "experiments[0].arms.x4.dose",
        ">= 0",
    ),
    "window_outside_unit_interval": (
        lambda d: d["experiments"][1].update(window=[0.2, 1.3]),
        "experiments[1].window",
        "0 <= start < end <= 1",
    ),
    "seq_len_above_block_size": (
        lambda d: d["run"].update(seq_len=128),
        "run.seq_len",
        "block_size 64",
    ),
    "unknown_key": (
        lambda d: d["run"].update(stpes=3),
        "run.stpes",
        "unknown key",
    ),
    "wrong_type": (
        lambda d: d["run"].update(steps="many"),
        "run.steps",
        "expected an integer",
    ),
    "unknown_kind_param": (
        lambda d: d["experiments"][1]["params"].update(prefix_token=3),
        "experiments[1].params.prefix_token",
        "unknown key",
    ),
    "old_power_block": (  # a pointer to where the options went, not just "unknown key"
        lambda d: d.update(power={"alpha": 0.01}),
        "power",
        "under analysis:",
    ),
    "two_control_arms": (
        lambda d: d["experiments"][0]["arms"].update(x4={"dose": 0, "share": 0.5}),
        "experiments[0].arms",
        "at most one control arm",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_design_is_refused_with_one_line_naming_file_and_field(case, tmp_path, tiny_corpus, capsys):
    mutate, field, expectation = CASES[case]
    code, err = _run_plan(tmp_path, _mutate(tiny_design(tiny_corpus), mutate), capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "bad.yaml" in err and field in err and expectation in err, err


def test_over_budget_plan_is_refused_and_says_by_how_much(tmp_path, tiny_corpus, capsys):
    design = tiny_design(tiny_corpus)
    design["run"]["max_injected_fraction"] = 0.01
    code, err = _run_plan(tmp_path, design, capsys)
    assert code == 2
    assert "run.max_injected_fraction" in err and "percentage points) over" in err, err
    assert "1.00%" in err


def test_missing_design_file_is_a_one_line_error(tmp_path, capsys):
    code = main(["plan", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "p"), "--quiet"])
    assert code == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nrun: [unclosed\n")
    code = main(["plan", str(path), "--out", str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "broken.yaml" in err and "line" in err
