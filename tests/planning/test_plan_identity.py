"""The plan hash covers plan.json itself: an edited plan.json is refused by train and inspect.

``plan.json`` lists the sha256 of every other file of the plan; its own content is covered
by ``plan_hash``, the sha256 of its canonical JSON without that field. ``Plan.open``
verifies both, so editing a setting in plan.json, or editing a file and updating its hash
in plan.json, is refused (issue 7), while a reformatted but equal plan.json is still the
same plan.
"""

from __future__ import annotations

import json
import shutil

import pytest

from designkit.cli import main
from designkit.errors import InputError
from designkit.planning import Plan
from designkit.planning.planfile import sha256_file


@pytest.fixture
def plan_copy(tmp_path, tiny_plan):
    return shutil.copytree(tiny_plan, tmp_path / "plan")


def _edit_plan_json(plan_dir, edit) -> None:
    meta = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    edit(meta)
    (plan_dir / "plan.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _refused_by_inspect_and_train(plan_dir, tmp_path, capsys) -> None:
    with pytest.raises(InputError, match="plan.json"):
        Plan.open(plan_dir)
    capsys.readouterr()
    assert main(["inspect", str(plan_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(plan_dir / "plan.json") in err and "plan_hash" in err
    assert main(["train", str(plan_dir), "--out", str(tmp_path / "run"), "--accelerator", "cpu", "--quiet"]) == 2
    assert not (tmp_path / "run").exists()


def test_an_edited_learning_rate_in_plan_json_is_refused(tmp_path, plan_copy, capsys):
    _edit_plan_json(plan_copy, lambda meta: meta["training"].update(learning_rate=0.5))
    _refused_by_inspect_and_train(plan_copy, tmp_path, capsys)


def test_an_edited_items_file_with_its_hash_updated_in_plan_json_is_refused(tmp_path, plan_copy, capsys):
    items = plan_copy / "items.parquet"
    items.write_bytes(items.read_bytes() + b"\0")
    _edit_plan_json(plan_copy, lambda meta: meta["files"].update({"items.parquet": sha256_file(items)}))
    _refused_by_inspect_and_train(plan_copy, tmp_path, capsys)


def test_a_plan_json_without_its_hash_is_refused(tmp_path, plan_copy, capsys):
    _edit_plan_json(plan_copy, lambda meta: meta.pop("plan_hash", None))
    with pytest.raises(InputError, match="plan_hash"):
        Plan.open(plan_copy)


def test_the_plan_hash_is_recorded_in_plan_json(tiny_plan):
    plan = Plan.open(tiny_plan)
    assert plan.meta["plan_hash"] == plan.hash and len(plan.hash) == 64


def test_a_reformatted_but_equal_plan_json_is_the_same_plan(tmp_path, plan_copy, tiny_plan):
    meta = json.loads((plan_copy / "plan.json").read_text(encoding="utf-8"))
    (plan_copy / "plan.json").write_text(json.dumps(meta, separators=(",", ":")), encoding="utf-8")
    assert Plan.open(plan_copy).hash == Plan.open(tiny_plan).hash
