import json
from pathlib import Path

import numpy as np
import pytest
from paper_formats import paper_format_params
from tiny_designs import tiny_design, write_design

from designkit.errors import InputError
from designkit.kinds.contamination import Contamination, ContaminationParams
from designkit.planning import Plan, make_plan

def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("path", paper_format_params("olmes_text"))
def test_olmes_text_files_split_into_question_and_answer(path):
    records = _records(path)
    items = Contamination(ContaminationParams()).load(path, records, context=None)
    assert len(items) == len(records) >= 5
    for item, record in zip(items, records):
        assert item.prompt.endswith("\nAnswer:")
        assert item.target.startswith(" ") and item.target.strip()
        # the training text is the record, and prompt + answer reassemble it
        assert item.text == record["text"]
        assert (item.prompt + item.target).replace("Answer: ", "Answer:", 1).replace(" ", "") == record["text"].replace(" ", "")


@pytest.mark.parametrize("path", paper_format_params("olmes_mc"))
def test_olmes_multiple_choice_files_keep_choices_and_gold(path):
    records = _records(path)
    items = Contamination(ContaminationParams()).load(path, records, context=None)
    assert len(items) == len(records) >= 5
    for item, record in zip(items, records):
        assert item.choices == [c if c.startswith(" ") else f" {c}" for c in record["choices"]]
        assert item.target == item.choices[record["gold"]] and item.text == record["query"] + item.target
        assert item.source_id == record["id"]


@pytest.mark.parametrize("path", paper_format_params("fictional_knowledge"))
def test_fictional_knowledge_files_become_cloze_items(path):
    records = _records(path)
    items = Contamination(ContaminationParams()).load(path, records, context=None)
    assert len(items) == len(records) >= 5
    for item, record in zip(items, records):
        assert item.prompt == record["input"] and item.target.strip() == record["target"].strip()
        assert item.target.startswith(" ") and item.text == item.prompt + item.target
        assert item.choices is None


@pytest.mark.parametrize("path", [p for p in paper_format_params("olmes_text") if "arc" in p.id or "fixture" in p.id])
def test_plan_with_a_benchmark_file_scores_gold_logprob(tmp_path, tiny_corpus, path):
    # a slice of the file: the loader must work on the paper's format end to end
    lines = path.read_text(encoding="utf-8").splitlines()[:40]
    short = [line for line in lines if len(json.loads(line)["text"]) < 120][:20]
    (tmp_path / "bench.jsonl").write_text("\n".join(short) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "arc", "kind": "contamination", "items": str(tmp_path / "bench.jsonl"),
                              "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}]
    design["run"]["seq_len"] = design["run"]["model"]["config"]["block_size"] = 256
    make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    exp = plan.experiments[0]
    # a text-only file keeps gold_logprob and the recall contrast (an unrelated question of the same arm)
    assert [p["name"] for p in exp["probes"]] == ["gold", "gold_unrelated"]
    assert [o["name"] for o in exp["outcomes"] if o["primary"]] == ["gold_logprob"]
    assert {o["name"] for o in exp["outcomes"]} == {"gold_logprob", "gold_logprob_unrelated", "recall_contrast"}
    assert "Familiarity, not recall, may drive gold_logprob" in exp["outcomes"][0]["description"]
    items = plan.probe_rows()
    assert len(items) == len(short) and items["target_tokens"].map(len).min() >= 1


def test_query_choices_gold_records_become_multiple_choice(tmp_path):
    records = [{"query": "Question: 2+2?\nAnswer:", "choices": ["3", "4", " 5"], "gold": 1, "id": "q1"}]
    (item,) = Contamination(ContaminationParams()).load(tmp_path / "x.jsonl", records, context=None)
    assert item.choices == [" 3", " 4", " 5"] and item.gold == 1 and item.text == "Question: 2+2?\nAnswer: 4"


@pytest.mark.parametrize(
    "record,field",
    [({"query": "q", "choices": ["a", "b"], "gold": 2}, "gold"), ({"query": "q", "choices": "ab", "gold": 0}, "choices"), ({"text": "no marker"}, "text"),
     ({"foo": 1}, "query"), ({"query": "q", "choices": ["a", "b"]}, "gold"), ({"choices": ["a", "b"], "gold": 0}, "query")],
)
def test_malformed_records_name_the_line_and_field(tmp_path, record, field):
    with pytest.raises(InputError) as info:
        Contamination(ContaminationParams()).load(tmp_path / "x.jsonl", [record], context=None)
    assert "x.jsonl:1" in str(info.value) and info.value.field == field


def test_generated_distractors_come_from_the_same_arm(tiny_plan):
    items = Plan.open(tiny_plan).probe_rows()
    bench = items[items["experiment"] == "bench"]
    gold_by_arm = {arm: set(group["target"]) for arm, group in bench.groupby("arm")}
    for row in bench.itertuples():
        assert row.choices[int(row.gold)] == row.target
        assert set(row.choices) <= gold_by_arm[row.arm], "a distractor from another arm would differ in familiarity"
        assert len(set(row.choices)) == len(row.choices)
        assert row.alt_prompt != row.prompt
        assert row.alt_prompt in set(bench.loc[bench["arm"] == row.arm, "prompt"])


def test_gold_position_is_randomized(tiny_plan):
    items = Plan.open(tiny_plan).probe_rows()
    golds = items.loc[items["experiment"] == "bench", "gold"].astype(int)
    assert golds.nunique() > 1


def test_generated_questions_are_unique_and_seeded():
    from designkit.kinds.contamination import ContaminationGenerate

    kind = Contamination(ContaminationParams())
    a = kind.generate(ContaminationGenerate(n=200), np.random.default_rng(1), None)
    b = kind.generate(ContaminationGenerate(n=200), np.random.default_rng(1), None)
    assert [i.text for i in a] == [i.text for i in b]
    assert len({i.meta["entity"] for i in a}) == 200 and len({i.target for i in a}) == 200
