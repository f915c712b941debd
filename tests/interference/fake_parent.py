"""Parent plans and parent checkpoints for the planner-side interference tests (no torch).

The planner reads a checkpoint's step from its directory name, its plan from the run's
``run.json`` and hashes its files; it never loads them. So a checkpoint whose files hold
placeholder bytes is enough to test sub-plans; the engine tests train real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from tiny_designs import tiny_design, write_design


def canary_experiments(n: int) -> list[dict]:
    return [
        {
            "name": f"c{i}",
            "kind": "canary",
            "items": {"generate": {"n": 4, "length": 8}},
            "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}},
            "params": {"prefix_tokens": 2},
        }
        for i in range(n)
    ]


def make_parent(root: Path, corpus: Path, experiments: list[dict] | None = None, **overrides) -> Path:
    from designkit.planning import make_plan

    design = tiny_design(corpus, **({"experiments": experiments} if experiments is not None else {}), **overrides)
    path = write_design(root / "design.yaml", design)
    make_plan(path, root / "plan", show_progress=False)
    return root / "plan"


def fake_checkpoint(run_dir: Path, plan_dir: Path, step: int) -> Path:
    from designkit.planning.planfile import Plan

    plan = Plan.open(plan_dir)
    ckpt = run_dir / "checkpoints" / f"step-{step:08d}"
    ckpt.mkdir(parents=True)
    for name in ("lit_model.pth", "model_config.yaml", "training_state.pt"):
        (ckpt / name).write_bytes(f"placeholder {name}".encode())
    (run_dir / "run.json").write_text(json.dumps({"format": "designkit-run/3", "plan_hash": plan.hash, "plan_path": str(plan_dir)}))
    return ckpt
