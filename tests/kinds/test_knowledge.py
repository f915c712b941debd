"""Kind knowledge (KA): invented facts share no words, the Fictional Knowledge format loads, controls are never inserted."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from paper_formats import paper_format_params

from designkit.errors import InputError
from designkit.kinds.knowledge import Knowledge, KnowledgeGenerate, KnowledgeParams


def _facts(n=40, seed=1):
    return Knowledge(KnowledgeParams()).generate(KnowledgeGenerate(n=n, paraphrases=3), np.random.default_rng(seed), context=None)


def test_generated_facts_share_no_word_so_controls_learn_nothing_from_treated_facts():
    facts = _facts()
    words = [set(re.findall(r"\w+", " ".join(f.meta["paraphrases"] + [f.prompt + f.target]).lower())) for f in facts]
    for i, a in enumerate(words):
        for b in words[i + 1 :]:
            assert not a & b
    assert all(len(f.meta["paraphrases"]) == 3 and len(set(f.meta["paraphrases"])) == 3 for f in facts)
    # every paraphrase is a payload of its fact, the first one the prompt's own phrasing
    assert all([p.text for p in f.payloads] == f.meta["paraphrases"] and f.payloads[0].text.startswith(f.prompt) for f in facts)


def test_generated_facts_are_seeded():
    assert [f.meta["paraphrases"] for f in _facts(seed=4)] == [f.meta["paraphrases"] for f in _facts(seed=4)]
    assert [f.meta["paraphrases"] for f in _facts(seed=4)] != [f.meta["paraphrases"] for f in _facts(seed=5)]


@pytest.mark.parametrize("path", paper_format_params("fictional_knowledge"))
def test_fictional_knowledge_probe_files_load_as_facts(path):
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = Knowledge(KnowledgeParams()).load(path, records, context=None)
    assert len(items) == len(records)
    for item, record in zip(items, records):
        assert item.prompt == record["input"] and item.target.strip() == record["target"].strip() and item.target.startswith(" ")
        assert item.payloads[0].text == record["input"] + item.target


@pytest.mark.parametrize("record, field", [({"input": "x"}, "target"), ({"input": "", "target": "y"}, "input"),
                                           ({"input": "x", "target": "y", "paraphrases": [3]}, "paraphrases")])  # fmt: skip
def test_malformed_records_name_the_line_and_field(tmp_path, record, field):
    with pytest.raises(InputError) as err:
        Knowledge(KnowledgeParams()).load(tmp_path / "facts.jsonl", [record], context=None)
    assert err.value.field == field


def test_the_controller_reads_the_facts_probe_at_every_interval():
    kind = Knowledge(KnowledgeParams(every=7, final_target=0.05, slots_per_interval=9))
    spec = kind.controller([])
    assert (spec.every, spec.probe, spec.column, spec.slots_per_interval) == (7, "fact", "logprob", 9)
    assert spec.params["final_target"] == 0.05 and kind.inloop_every() == 7
    assert [p.name for p in kind.probes([])] == ["fact"]
