"""Shared fixtures: a tiny real corpus (stdlib docstrings, small BPE) and design files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
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


@pytest.fixture(scope="session", autouse=True)
def isolated_designkit_home(tmp_path_factory):
    """Keep built-in corpus caches of the tests out of the user's home."""
    home = tmp_path_factory.mktemp("designkit-home")
    old = os.environ.get("DESIGNKIT_HOME")
    os.environ["DESIGNKIT_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("DESIGNKIT_HOME", None)
    else:
        os.environ["DESIGNKIT_HOME"] = old


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A prepared corpus of ~150k tokens: the first stdlib docstring documents, BPE vocab 512."""
    from designkit.data.corpus import prepare_corpus
    from designkit.data.stdlib_docs import write_jsonl

    root = tmp_path_factory.mktemp("tiny-corpus")
    source = write_jsonl(root / "docs.jsonl", max_documents=120)
    prepare_corpus(source, root / "corpus", train_vocab=512, show_progress=False)
    return root / "corpus"


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


@pytest.fixture
def design_file(tmp_path, tiny_corpus) -> Path:
    return write_design(tmp_path / "design.yaml", tiny_design(tiny_corpus))


@pytest.fixture(scope="session")
def tiny_plan(tmp_path_factory, tiny_corpus) -> Path:
    """A planned tiny design, shared read-only by tests that only read plans."""
    from designkit.planning import make_plan

    root = tmp_path_factory.mktemp("tiny-plan")
    design = write_design(root / "design.yaml", tiny_design(tiny_corpus))
    make_plan(design, root / "plan", show_progress=False)
    return root / "plan"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared CPU: more intra-op threads only add contention."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
