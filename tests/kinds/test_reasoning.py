"""Kind reasoning (MR): seeded templates, decontaminated and answer-balanced test problems, the outcomes."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from designkit.errors import InputError
from designkit.kinds.reasoning import Reasoning, ReasoningGenerate, ReasoningParams, ngrams, word_tokens


def _templates(n=6, seed=1, **options):
    options = {"train_problems": 6, "test_problems": 4, **options}
    return Reasoning(ReasoningParams()).generate(ReasoningGenerate(n=n, **options), np.random.default_rng(seed), context=None)


def _answer(solution: str) -> int:
    return int(re.search(r"Answer: \D*(\d+)$", solution).group(1))


def test_generated_templates_are_seeded():
    texts = lambda items: [[p.text for p in i.payloads] + [q.prompt + q.target for q in i.probe_instances] for i in items]  # noqa: E731
    assert texts(_templates(seed=4)) == texts(_templates(seed=4))
    assert texts(_templates(seed=4)) != texts(_templates(seed=5))


def test_solutions_show_each_step_and_a_correct_answer_mod_23():
    for item in _templates():
        for payload in item.payloads:
            problem, solution = payload.text.split("\n", 1)
            steps = re.findall(r"= (\d+) ([+*-]) (\d+) = (\d+)[,.]", solution)
            assert len(steps) == 2  # two operations per template by default
            for a, op, b, out in steps:
                a, b = int(a), int(b)
                assert int(out) == {"+": a + b, "-": a - b, "*": a * b}[op] % 23
            assert _answer(solution) == int(steps[-1][3])


def test_test_problems_share_no_13_gram_with_any_training_problem_of_the_experiment():
    items = _templates(n=8, train_problems=20)
    train = set().union(*(ngrams(word_tokens(p.text), 13) for i in items for p in i.payloads))
    for item in items:
        for q in item.probe_instances:
            assert not ngrams(word_tokens(q.prompt + q.target), 13) & train
    # the test problems are new instances: never a training problem's text
    assert not {q.prompt + q.target for i in items for q in i.probe_instances} & {p.text for i in items for p in i.payloads}


def test_templates_share_no_13_gram_so_control_templates_learn_nothing_from_treated_ones():
    grams = [set().union(*(ngrams(word_tokens(p.text), 13) for p in i.payloads)) for i in _templates(n=8)]
    for i, a in enumerate(grams):
        for b in grams[i + 1 :]:
            assert not a & b


def test_test_answers_are_balanced_over_the_residues_and_templates_stratified_by_op():
    items = _templates(n=12, test_problems=23)  # 276 test problems: 12 per residue
    answers = Counter(_answer(q.target) for i in items for q in i.probe_instances)
    assert set(answers) == set(range(23)) and set(answers.values()) == {12}
    assert Counter(i.stratum for i in items) == {"op=add": 4, "op=sub": 4, "op=mul": 4}
    for item in items:  # the stratum is the operation that produces the answer
        symbol = re.findall(r"= \d+ ([+*-]) \d+ = \d+[,.]", item.payloads[0].text)[-1]
        assert item.stratum == {"+": "op=add", "-": "op=sub", "*": "op=mul"}[symbol]


def test_a_test_problem_sharing_a_13_gram_with_a_training_problem_is_refused_naming_it(tmp_path):
    train = "Brakos = 5, Tulni = Brakos + 7. Tulni?\nBrakos = 5, Tulni = 5 + 7 = 12.\nAnswer: 12"
    records = [
        {"template": "a", "op": "add", "train": [train],
         "test": [{"problem": "Brakos = 1, Tulni = Brakos + 2. Tulni?", "solution": "Brakos = 1, Tulni = 1 + 2 = 3.\nAnswer: 3"}]},
        {"template": "b", "op": "add", "train": ["Vomir = 3, Kel = Vomir + 4. Kel?\nVomir = 3, Kel = 3 + 4 = 7.\nAnswer: 7"],
         "test": [{"problem": "Zed is 9.", "solution": "Zed = 9.\nAnswer: 9"},
                  {"problem": "Brakos = 5, Tulni = Brakos + 7. Tulni?", "solution": "Brakos = 5, Tulni = 5 + 7 = 12.\nAnswer: 12"}]},
    ]  # fmt: skip
    path = tmp_path / "templates.jsonl"
    with pytest.raises(InputError) as err:
        Reasoning(ReasoningParams()).load(path, records, context=None)
    assert err.value.field == "test[1]" and "line 2" in str(err.value) or str(path) in str(err.value)
    assert "template 'a' train[0]" in str(err.value) and "\n" not in str(err.value)
    items = Reasoning(ReasoningParams()).load(path, records[:1], context=None)  # new numbers: accepted
    assert [i.stratum for i in items] == ["op=add"] and items[0].meta["answers"] == [3]


@pytest.mark.parametrize("record, field", [({"train": ["x"], "test": [], "extra": 1}, "extra"), ({"train": [], "test": [{}]}, "train"),
                                           ({"train": ["x"], "test": [{"problem": "p", "solution": "no answer"}]}, "test[0].solution")])  # fmt: skip
def test_malformed_template_records_name_the_field(tmp_path, record, field):
    with pytest.raises(InputError) as err:
        Reasoning(ReasoningParams()).load(tmp_path / "t.jsonl", [record], context=None)
    assert err.value.field == field


def test_unknown_ops_are_refused():
    with pytest.raises(InputError) as err:
        Reasoning.check(ReasoningParams(), ReasoningGenerate(n=4, ops=["add", "div"]))
    assert err.value.field == "items.generate.ops"


def test_outcomes_are_accuracy_against_chance_and_its_effect_per_op_stratum():
    kind = Reasoning(ReasoningParams(modulus=23))
    outcomes = {o.name: o for o in kind.outcomes(_templates())}
    assert outcomes["accuracy"].primary and outcomes["accuracy"].baseline == pytest.approx(1 / 23)
    assert outcomes["accuracy_by_op"].estimator == "per_stratum" and outcomes["accuracy_by_op"].column == "correct"
    (spec,) = kind.probes([])
    assert spec.type == "answer" and spec.fields["reference"] == "target_tokens"
