import json

import numpy as np
import pandas as pd
import pytest
from tiny_designs import tiny_design, write_design

from designkit.data.corpus import TokenCorpus
from designkit.errors import InputError
from designkit.planning import make_plan
from designkit.planning.leakage import leakage_report


def _texts_experiment(name, path, doses=(0, 2)):
    return {
        "name": name,
        "kind": "texts",
        "items": str(path),
        "arms": {"control": {"dose": doses[0], "share": 0.5}, "x2": {"dose": doses[1], "share": 0.5}},
    }


def test_planted_overlaps_with_corpus_and_between_experiments_are_detected(tmp_path, tiny_corpus):
    corpus = TokenCorpus.open(tiny_corpus)
    tokenizer = corpus.tokenizer()
    planted = tokenizer.decode(corpus.tokens[1000:1040].tolist())  # a verbatim corpus passage
    fresh = [
        "Seven amber herons argued quietly over cold plum soup.",
        "Under grey drizzle, Mabel repainted her vintage tractor crimson.",
        "Zigzag kites tangled above Quentin's crooked greenhouse roof.",
        "Forty jugglers rehearsed backwards in an abandoned velodrome.",
        "Dusty violins hummed whenever the lighthouse keeper sneezed.",
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in [planted, *fresh[:3]]) + "\n")
    shared = fresh[0]  # the same text appears in a second experiment
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in [shared, fresh[4]]) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [_texts_experiment("texts-a", tmp_path / "a.jsonl"), _texts_experiment("texts-b", tmp_path / "b.jsonl")]
    result = make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    leak = result.meta["leakage"]
    assert leak["items_in_corpus"] == 1
    assert leak["examples_in_corpus"] == ["texts-a/000000"]
    assert leak["cross_experiment_pairs"] == 1
    assert leak["examples_cross_experiment"] == [["texts-a/000001", "texts-b/000000"]]
    per_arm = pd.DataFrame(leak["per_arm"])
    assert per_arm["in_corpus"].sum() == 1 and per_arm["cross_experiment"].sum() == 2

    design["leakage"] = "error"
    with pytest.raises(InputError, match="leakage.*13-gram overlap"):
        make_plan(write_design(tmp_path / "e.yaml", design), tmp_path / "plan2", show_progress=False)
    assert not (tmp_path / "plan2").exists()


def test_clean_synthetic_items_show_no_leakage(tiny_plan):
    meta = json.loads((tiny_plan / "plan.json").read_text())
    assert meta["leakage"]["items_in_corpus"] == 0
    assert meta["leakage"]["cross_experiment_pairs"] == 0


def test_sampled_corpus_scan_reports_tokens_scanned():
    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 500, size=200_000).astype(np.uint16)
    payload = corpus[150_000:150_020].copy()
    items = pd.DataFrame({"experiment": ["e"], "arm": ["t"], "item_id": ["e/0"]})
    full = leakage_report(items, payload, np.array([0, 20]), corpus, 13)
    assert full["items_in_corpus"] == 1 and full["corpus_tokens_scanned"] == 200_000
