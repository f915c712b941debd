"""Fixtures of the bad-input suite: one tiny plan and one tiny trained run per session.

Every case works on copies under its own ``tmp_path`` (the directory ``refused`` checks
for changes), so the shared originals stay pristine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_designs import tiny_design, write_design

from .harness import copy_tree, small_design


@pytest.fixture
def valid_design(tiny_corpus) -> dict:
    """The tests' tiny design (a fresh copy per case), to be broken one key at a time."""
    return tiny_design(tiny_corpus)


@pytest.fixture(scope="session")
def small_plan(tmp_path_factory, tiny_corpus) -> Path:
    from designkit.planning import make_plan

    root = tmp_path_factory.mktemp("bad-inputs-plan")
    design = write_design(root / "design.yaml", small_design(tiny_corpus))
    make_plan(design, root / "plan", show_progress=False)
    return root / "plan"


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, small_plan) -> Path:
    import torch

    from engine.train import train

    run = tmp_path_factory.mktemp("bad-inputs-run") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(small_plan, run, accelerator="cpu", show_progress=False)
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.fixture
def plan_copy(tmp_path, small_plan) -> Path:
    return copy_tree(small_plan, tmp_path / "plan")


@pytest.fixture
def run_copy(tmp_path, small_plan, small_run) -> Path:
    """A copy of the trained run and of its plan; ``run.json`` points at the copied plan."""
    plan = copy_tree(small_plan, tmp_path / "plan")
    run = copy_tree(small_run, tmp_path / "run")
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    meta["plan_path"] = str(plan)
    (run / "run.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return run

