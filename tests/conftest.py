"""Shared fixtures: a tiny real corpus (stdlib docstrings, small BPE) and design files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_designs import tiny_design, write_design


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
