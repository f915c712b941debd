"""Kind texts on a tiny model: chunks of long documents split across sequences, inserted i.i.d.
texts and reserve documents trained in place of base sequences are detected by their loss,
membership AUC and TPR at 1% FPR (p < 0.01)."""

import itertools
import json
import time

import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.data.stdlib_docs import iter_stdlib_documents
from designkit.planning import Plan


def _documents(n: int, words: int = 60) -> list[dict]:
    """Python standard-library docstrings far past the tiny corpus's first 120: distinct real
    texts, so control documents learn little from treated ones."""
    found = []
    for text in itertools.islice(iter_stdlib_documents(), 400, None):
        if len(text.split()) >= words:
            found.append({"id": f"doc{len(found)}", "text": " ".join(text.split()[:words])})
        if len(found) == n:
            return found
    raise AssertionError("the standard library has too few long docstrings")


@pytest.mark.slow
def test_inserted_and_replacing_texts_are_detected_by_loss_and_membership(tmp_path, tiny_corpus, capsys, one_torch_thread):
    # a tiny model learns a text only at a high learning rate (2e-3 to 3e-3) and many copies
    design = tiny_design(tiny_corpus, **{"run.steps": 120, "run.training.checkpoints": [120], "run.training.save_initial": False})
    design["run"]["training"]["learning_rate"] = 3e-3
    design["run"]["max_injected_fraction"] = 0.45
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in _documents(24, words=30)))
    design["experiments"] = [
        {"name": "muse", "kind": "texts", "items": str(tmp_path / "docs.jsonl"),
         "params": {"chunk_tokens": 24, "prefix_tokens": 4, "continuation_tokens": 8},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x10": {"dose": 10, "share": 0.5}}},
        {"name": "iid", "kind": "texts", "params": {"prefix_tokens": 4, "continuation_tokens": 8},
         "items": {"generate": {"n": 24, "n_tokens": 20}},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x32": {"dose": 32, "share": 0.5}}},
        {"name": "replace", "kind": "texts", "params": {"replace": True, "prefix_tokens": 4, "continuation_tokens": 8},
         "items": {"generate": {"n": 16, "copies": 16}},
         "arms": {"control": {"dose": 0, "share": 0.5}, "x16": {"dose": 1, "share": 0.5}}},
    ]
    plan, run, report = tmp_path / "plan", tmp_path / "run", tmp_path / "report"
    started = time.perf_counter()
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(plan)]) == 0, capsys.readouterr().err
    assert main(["train", str(plan), "--out", str(run), "--accelerator", "cpu", "--quiet"]) == 0
    assert main(["analyze", str(run), "--out", str(report), "--quiet"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    print(f"texts tiny run: {time.perf_counter() - started:.1f} s")
    effects = pd.read_parquet(report / "effects.parquet")
    documents = Plan.open(plan).probe_instances()
    muse = Plan.open(plan).items().query("experiment == 'muse'")["item_index"]
    assert documents[documents["item_index"].isin(muse)].groupby("item_index").size().min() > 1  # every document is split
    for experiment in ("muse", "iid", "replace"):
        final = effects[(effects["experiment"] == experiment) & (effects["step"] == 120)].set_index(["outcome", "comparison"])
        vs = "vs_control"
        assert final.loc[("loss", vs), "estimate"] < 0 and final.loc[("loss", vs), "p"] < 0.01, experiment
        assert final.loc[("membership_auc", vs), "estimate"] > 0.75 and final.loc[("membership_auc", vs), "p"] < 0.01, experiment
        if experiment != "muse":
            # 12 against 12 documents of varied difficulty: TPR at 1% FPR is reported for them,
            # but its permutation p (0.007 here) sits too near 0.01 to assert
            assert final.loc[("membership_tpr", vs), "p"] < 0.01 and final.loc[("membership_tpr", vs), "estimate"] > 0.5, experiment
