"""Demo-style plans for the benchmarks: ``designs/demo.yaml`` rescaled, and its empty twin.

The demo-style plan keeps the demo's three experiments (contamination at 0/4/16
repetitions, canaries, an A/A placebo) and scales their item counts with the number of
steps, so the injected share of the run stays the demo's (~4-5%). The empty plan is the
same design with every experiment marked placebo: items are assigned and nothing is
inserted, so the two runs differ only in the edits the stream applies.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "designs" / "demo.yaml"


def demo_design(steps: int, *, model: dict[str, Any] | None = None, seq_len: int | None = None, global_batch: int | None = None,
                corpus: str | None = None, train_vocab: int | None = None, max_injected_fraction: float | None = None) -> dict:  # fmt: skip
    """designs/demo.yaml with ``steps`` steps (items scaled to keep its injected share)."""
    design = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    run = design["run"]
    old_tokens = run["steps"] * run["global_batch"] * run["seq_len"]
    run["steps"] = steps
    if model is not None:
        run["model"] = {"config": model}
    if seq_len is not None:
        run["seq_len"] = seq_len
    if global_batch is not None:
        run["global_batch"] = global_batch
    if corpus is not None:
        run["corpus"] = corpus
        run.pop("tokenizer", None)
    if train_vocab is not None:
        run["tokenizer"] = {"train_vocab": train_vocab}
    if max_injected_fraction is not None:
        run["max_injected_fraction"] = max_injected_fraction
    scale = steps * run["global_batch"] * run["seq_len"] / old_tokens
    for exp in design["experiments"]:
        generate = exp["items"]["generate"]
        generate["n"] = max(4 * len(exp["arms"]), round(generate["n"] * scale))
    # one checkpoint at the end; no step-0 save, no mid-run pauses in the timed loop
    run["training"] = {**run.get("training", {}), "checkpoints": [steps], "save_initial": False}
    return design


def empty_twin(design: dict) -> dict:
    """The same design with nothing inserted (every experiment a placebo)."""
    twin = copy.deepcopy(design)
    twin["name"] = f"{design['name']}-empty"
    for exp in twin["experiments"]:
        exp["placebo"] = True
    return twin


def make(design: dict, root: Path, name: str) -> Path:
    """Plan ``design`` into ``root/name`` (re-planned only when the design changed)."""
    from designkit.planning import make_plan
    from designkit.planning.planfile import Plan

    root.mkdir(parents=True, exist_ok=True)
    design_file = root / f"{name}.yaml"
    text = yaml.safe_dump(design, sort_keys=False)
    plan_dir = root / name
    if design_file.is_file() and design_file.read_text() == text and (plan_dir / "plan.json").is_file():
        return plan_dir
    design_file.write_text(text)
    make_plan(design_file, plan_dir, force=True, show_progress=False)
    Plan.open(plan_dir)
    return plan_dir


def make_empty(design: dict, root: Path, name: str, from_plan: Path) -> Path:
    """The empty twin, planned; if the planner cannot plan a design that inserts nothing,
    the demo-style plan rewritten with no edits (same items, geometry, seed and corpus)."""
    try:
        return make(empty_twin(design), root, name)
    except (IndexError, ValueError) as exc:
        print(f"note: the planner cannot plan the all-placebo twin ({type(exc).__name__}: {exc}); "
              "writing the demo-style plan with its placements removed instead", flush=True)  # fmt: skip
    import shutil

    import numpy as np

    from designkit.planning.planfile import Plan, write_plan

    plan = Plan.open(from_plan)
    meta = {k: v for k, v in plan.meta.items() if k not in ("files", "format")}
    meta["name"] = f"{meta['name']}-empty"
    for exp in meta["experiments"]:
        exp["placebo"] = True
    items = plan.items().assign(inserted=False)
    placements = plan.placements().iloc[0:0].assign(edit=lambda f: f["edit"].astype(str))
    tokens, index = plan.payload
    out = root / name
    if out.exists():
        shutil.rmtree(out)
    write_plan(out, meta, items, np.asarray(tokens), index, placements, plan.reserved(), plan.tokenizer_dir)
    return out
