"""Probe answer: free generation keeps its tokens; the answer is the first answer line's regex group, before EOS."""

from __future__ import annotations

import numpy as np
import pytest

from designkit.errors import InputError
from designkit.plan_types import ProbeSpec
from designkit.probes import ProbeContext, make_probe


def _probe(**fields):
    return make_probe(ProbeSpec("solve", "answer", {"prompt": "p", "reference": "r", "max_new_tokens": 8, **fields}))


def test_answer_probe_extracts_the_first_answer_line_and_keeps_the_tokens():
    vocab = ["<eos>", "x = 3 + 4 = 7.", "\n", "Answer: 7", "Answer: 9", "Answer: 8"]
    context = ProbeContext(0, decode=lambda ids: "".join(vocab[i] for i in ids))
    probe = _probe()
    probe_input = probe.read({"prompt": [1], "reference": [1, 2, 3]}, {"item_id": "t"}, context)
    (request,) = probe.requests(probe_input, 0)
    assert request.prompt == (0, 1) and request.n_new == 8
    right = probe.score(probe_input, [np.array([1, 2, 3, 2, 4])])  # the model runs on: its first answer counts
    assert right == {"generated": [1, 2, 3, 2, 4], "answered": True, "answer": "7", "correct": True}
    wrong = probe.score(probe_input, [np.array([2, 4, 2, 3])])
    assert wrong["answer"] == "9" and not wrong["correct"]
    after_eos = probe.score(probe_input, [np.array([1, 0, 3])])  # text after EOS is not the solution
    assert after_eos["answered"] is False and after_eos["answer"] is None and not after_eos["correct"]


def test_answer_probe_refuses_a_pattern_without_a_group_and_references_without_an_answer():
    with pytest.raises(InputError) as err:
        _probe(answer_pattern="Answer:")
    assert err.value.field == "answer_pattern"
    context = ProbeContext(0, decode=lambda ids: "no answer here")
    with pytest.raises(InputError):
        _probe().read({"prompt": [1], "reference": [1]}, {"item_id": "t"}, context)


def test_the_plans_decoder_loads_its_tokenizer_only_when_a_probe_reads_text(tmp_path, tiny_corpus):
    from designkit.data.tokenizer import TextTokenizer, lazy_decoder

    never = lazy_decoder(tmp_path / "no-tokenizer")  # a plan without text-reading probes never loads it
    with pytest.raises(InputError):
        never([1])
    text = "x = 3 + 4 = 7.\nAnswer: x = 7"
    assert lazy_decoder(tiny_corpus)(TextTokenizer(tiny_corpus).encode(text)) == text
