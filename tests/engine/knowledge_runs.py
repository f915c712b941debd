"""A tiny controlled-dose (knowledge) plan and its runs, shared by the controller tests."""

from __future__ import annotations

from pathlib import Path

from tiny_designs import TINY_MODEL, write_design


def knowledge_design(corpus: Path, *, steps: int = 40, every: int = 5, final_target: float = 0.01, n: int = 16,
                     checkpoints=(20, 40), learning_rate: float = 3e-3, probe_column: str = "logprob_per_token") -> dict:  # fmt: skip
    return {
        "name": "ka",
        "seed": 5,
        "run": {
            "model": {"config": dict(TINY_MODEL)},
            "corpus": str(corpus),
            "seq_len": 64,
            "global_batch": 8,
            "steps": steps,
            "max_injected_fraction": 0.5,
            "training": {"learning_rate": learning_rate, "warmup_steps": 2, "checkpoints": list(checkpoints), "log_every": 5},
        },
        "experiments": [
            {
                "name": "facts",
                "kind": "knowledge",
                "items": {"generate": {"n": n, "paraphrases": 2}},
                "arms": {"control": {"dose": 0, "share": 0.5}, "treated": {"dose": 1, "share": 0.5}},
                "params": {"every": every, "final_target": final_target, "slots_per_interval": 24, "max_dose": 16,
                           "probe_column": probe_column},
            }
        ],
    }


def make_knowledge_plan(root: Path, corpus: Path, **kwargs) -> Path:
    from designkit.planning import make_plan

    if not (root / "plan" / "plan.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        design = write_design(root / "design.yaml", knowledge_design(corpus, **kwargs))
        make_plan(design, root / "plan", force=True, show_progress=False)
    return root / "plan"
