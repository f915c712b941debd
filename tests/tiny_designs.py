"""Design builders shared by the tests: a tiny valid design over a prepared corpus.

A normal module (``pythonpath = ["tests"]`` in pyproject.toml puts it on the path), so test
modules import it by name instead of reaching into ``conftest``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TINY_MODEL = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 64,
    "bias": False,
    "rotary_percentage": 1.0,
    "parallel_residual": False,
    "norm_class_name": "RMSNorm",
    "mlp_class_name": "LLaMAMLP",
    "intermediate_size": 64,
}


def tiny_design(corpus: Path, **overrides) -> dict:
    """A small valid design dict over ``corpus``: two experiments, tiny model, 40 steps."""
    design = {
        "name": "tiny",
        "seed": 3,
        "run": {
            "model": {"config": dict(TINY_MODEL)},
            "corpus": str(corpus),
            "seq_len": 64,
            "global_batch": 8,
            "steps": 40,
            "max_injected_fraction": 0.25,
            "training": {"learning_rate": 3e-3, "warmup_steps": 4, "checkpoints": 2, "log_every": 5},
        },
        "experiments": [
            {
                "name": "bench",
                "kind": "contamination",
                "items": {"generate": {"n": 24}},
                "arms": {"control": {"dose": 0, "share": 0.5}, "x4": {"dose": 4, "share": 0.5}},
            },
            {
                "name": "canary",
                "kind": "canary",
                "items": {"generate": {"n": 12, "length": 16}},
                "arms": {"control": {"dose": 0, "share": 0.5}, "x3": {"dose": 3, "share": 0.5}},
                "params": {"prefix_tokens": 4},
            },
        ],
    }
    for dotted, value in overrides.items():
        node = design
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return design


def write_design(path: Path, design: dict) -> Path:
    path.write_text(yaml.safe_dump(design, sort_keys=False), encoding="utf-8")
    return path


EDIT_KINDS = "plugins.edit_kinds"  # tests/plugins/edit_kinds.py, named by import path


def edit_design(corpus: Path, *, noise_std: float = 0.5) -> dict:
    """A tiny design with one experiment per edit: removal, whole-window noise, span noise
    on inserted texts, and reserve-region excerpts (texts)."""
    design = tiny_design(corpus, **{"run.steps": 8})
    arms = {"control": {"dose": 0, "share": 0.5}, "treated": {"dose": 1, "share": 0.5}}
    design["experiments"] = [
        {"name": "removal", "kind": f"{EDIT_KINDS}:WindowRemoval", "items": {"generate": {"n": 10}}, "arms": arms},
        {"name": "gw_base", "kind": f"{EDIT_KINDS}:WindowNoise", "items": {"generate": {"n": 6}}, "arms": arms,
         "params": {"noise_std": noise_std}},
        {"name": "watermark", "kind": f"{EDIT_KINDS}:SpanWatermark", "items": {"generate": {"n": 6}},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x3": {"dose": 3, "share": 0.5}}, "params": {"noise_std": noise_std}},
        {"name": "iid", "kind": "texts", "items": {"generate": {"n": 6, "n_tokens": 20}},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}},
    ]
    return design
