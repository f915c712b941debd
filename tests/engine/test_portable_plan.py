"""A plan made with the corpus at one path trains with ``--corpus`` pointing at a copy elsewhere,
and is refused when the copy differs by one token. Checkpoint hashes are read once."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tiny_designs import TINY_MODEL, write_design

from designkit import file_hashes
from designkit.cli import main as designkit_main
from designkit.planning import Plan, make_plan
from designkit.runfile import RunDir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _design(corpus, model=None) -> dict:
    return {
        "name": "portable",
        "seed": 5,
        "run": {
            "model": model or {"config": dict(TINY_MODEL)},
            "corpus": str(corpus),
            "seq_len": 64,
            "global_batch": 4,
            "steps": 2,
            "max_injected_fraction": 0.5,
            "training": {"warmup_steps": 1, "checkpoints": [2], "log_every": 1},
        },
        "experiments": [
            {
                "name": "canary",
                "kind": "canary",
                "items": {"generate": {"n": 4, "length": 8}},
                "arms": {"control": {"dose": 0, "share": 0.5}, "x1": {"dose": 1, "share": 0.5}},
                "params": {"prefix_tokens": 2},
            }
        ],
    }


@pytest.fixture(scope="module")
def moved(tmp_path_factory, tiny_corpus):
    """A plan made on 'the laptop', whose corpus then moved to 'the cluster'."""
    root = tmp_path_factory.mktemp("portable")
    laptop = root / "laptop-corpus"
    shutil.copytree(tiny_corpus, laptop)
    make_plan(write_design(root / "design.yaml", _design(laptop)), root / "plan", show_progress=False)
    cluster = root / "cluster" / "corpus"
    shutil.copytree(laptop, cluster)
    shutil.rmtree(laptop)  # nothing may read the planned path any more
    return root, cluster


@pytest.fixture(scope="module")
def trained(moved):
    """The moved plan trained with ``--corpus`` pointing at the copy: (root, cluster corpus, exit code)."""
    root, cluster = moved
    code = designkit_main(["train", str(root / "plan"), "--out", str(root / "run"), "--corpus", str(cluster), "--accelerator", "cpu", "--quiet"])
    return root, cluster, code


def test_a_plan_trains_with_its_corpus_copied_elsewhere(trained):
    root, cluster, code = trained
    assert Plan.open(root / "plan").meta["corpus"]["path"] == str(root / "laptop-corpus")
    assert code == 0
    run = RunDir.open(root / "run")
    assert run.meta["corpus_path"] == str(cluster.resolve())
    assert 2 in run.checkpoints() and (root / "run" / "applied.parquet").is_file()
    # scoring and analysis read the plan through the run: they find the corpus where it trained
    assert run.plan().corpus().path == cluster.resolve()


def test_a_resume_reads_the_corpus_the_run_recorded(trained):
    from engine.train import train

    root, cluster, _ = trained
    summary = train(root / "plan", root / "run", resume=True, accelerator="cpu", show_progress=False)  # no --corpus
    assert summary.resumed_from == 2
    assert RunDir.open(root / "run").meta["resumes"][-1]["corpus_path"] == str(cluster.resolve())


def test_a_corpus_copy_differing_by_one_token_is_refused(moved, tmp_path, capsys):
    root, cluster = moved
    changed = tmp_path / "changed"
    shutil.copytree(cluster, changed)
    meta = json.loads((changed / "corpus.json").read_text())
    tokens = np.memmap(changed / "tokens.bin", dtype=meta["dtype"], mode="r+")
    tokens[1000] = (int(tokens[1000]) + 1) % meta["vocab_size"]  # corpus.json still claims the old fingerprint
    tokens.flush()
    del tokens
    code = designkit_main(["train", str(root / "plan"), "--out", str(tmp_path / "run"), "--corpus", str(changed), "--accelerator", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "tokens.bin: fingerprint: expected sha256" in err
    assert not (tmp_path / "run").exists()


def test_another_corpus_is_refused_by_its_recorded_fingerprint(moved, tmp_path):
    from designkit.errors import InputError
    from engine.train import train

    root, cluster = moved
    other = tmp_path / "other"
    shutil.copytree(cluster, other)
    meta = json.loads((other / "corpus.json").read_text())
    meta["fingerprint"] = "0" * 64
    (other / "corpus.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="corpus.json: fingerprint: expected"):
        train(root / "plan", tmp_path / "run", corpus=other, accelerator="cpu", show_progress=False)


def test_continual_pretraining_weights_are_read_once_for_plan_and_train(trained, tmp_path, monkeypatch):
    from engine.model import verify_checkpoint_weights

    root, cluster, _ = trained
    source = tmp_path / "source"
    shutil.copytree(root / "run" / "checkpoints" / "step-00000002", source)
    reads = []
    real = file_hashes.digest_files
    monkeypatch.setattr(file_hashes, "digest_files", lambda paths: reads.append(list(paths)) or real(reads[-1]))
    design = _design(cluster, model={"checkpoint": str(source)})
    plan = make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    weight_reads = lambda: [p for p in reads if p[0].name == "lit_model.pth"]  # noqa: E731
    assert len(weight_reads()) == 1
    verify_checkpoint_weights(Plan.open(plan.path))
    assert len(weight_reads()) == 1  # train reused the plan's digest
