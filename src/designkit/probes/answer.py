"""``answer``: free generation after a problem, its tokens kept, and the answer extracted from
its final answer line by a regular expression (reasoning problems, Ye et al. 2025 iGSM).

The generated tokens are decoded with the plan's tokenizer (``ProbeContext.decode``) up to
the first EOS; the *first* line matching ``answer_pattern`` ends the solution and its first
group is the model's answer (later lines are the model running on). The reference answer is
read the same way from the reference solution, so both sides go through one extractor.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from designkit.probes.base import Column, GreedyRequest, ItemField, Probe, ProbeContext, as_tokens

DEFAULT_ANSWER_PATTERN = r"Answer:\D*?(-?\d+)"
"""The first number after ``Answer:`` ("Answer: 17", "Answer: x = 17")."""


def extract_answer(text: str, pattern: re.Pattern[str]) -> str | None:
    """The first group of the first line of ``text`` that matches ``pattern``, or None."""
    for line in text.splitlines():
        match = pattern.search(line)
        if match:
            return match.group(1)
    return None


class Answer(Probe):
    name = "answer"
    description = ("greedy free generation of up to `max_new_tokens` after EOS + prompt, tokens kept; the answer is the first "
                   "group of `answer_pattern` on the first matching line, compared with the reference's")  # fmt: skip
    item_fields = (ItemField("prompt", "prompt tokens (the problem)"),
                   ItemField("reference", "tokens of the reference solution, ending in its answer line"))  # fmt: skip
    options = (("max_new_tokens", "most tokens to generate, a positive integer"),
               ("answer_pattern", f"regular expression with one group, the answer (default `{DEFAULT_ANSWER_PATTERN}`)"))  # fmt: skip
    columns = (
        Column("generated", pa.list_(pa.int32()), "the generated tokens"),
        Column("answered", pa.bool_(), "the generation has an answer line"),
        Column("answer", pa.string(), "the extracted answer (null: none)"),
        Column("correct", pa.bool_(), "the extracted answer equals the reference's"),
    )

    @dataclass(frozen=True)
    class Input:
        prompt: tuple[int, ...]
        reference_answer: str
        max_new_tokens: int
        eos_id: int
        decode: Callable[[Sequence[int]], str] = field(compare=False, repr=False)

    def configure(self, fields: Mapping[str, Any]) -> None:
        value = fields.get("max_new_tokens")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise self.refuse("max_new_tokens", f"expected a positive integer, got {value!r}")
        self.max_new_tokens = int(value)
        pattern = fields.get("answer_pattern", DEFAULT_ANSWER_PATTERN)
        try:
            self.pattern = re.compile(pattern)
        except (re.error, TypeError):
            raise self.refuse("answer_pattern", f"expected a regular expression, got {pattern!r}") from None
        if self.pattern.groups < 1:
            raise self.refuse("answer_pattern", f"expected a regular expression with a group (the answer), got {pattern!r}")

    def read(self, values: Mapping[str, Any], item: Mapping[str, Any], context: ProbeContext) -> Input | None:
        reference = extract_answer(context.decode(as_tokens(values["reference"])), self.pattern)
        if reference is None:
            raise self.refuse("reference", f"expected reference solutions with an answer line matching {self.pattern.pattern!r} "
                                           f"(item {item.get('item_id')!r} has none)")  # fmt: skip
        return self.Input(as_tokens(values["prompt"]), reference, self.max_new_tokens, context.eos_id, context.decode)

    def requests(self, probe_input: Input, eos_id: int) -> list[GreedyRequest]:
        return [GreedyRequest((int(eos_id),) + probe_input.prompt, probe_input.max_new_tokens)]

    def score(self, probe_input: Input, results: Sequence[np.ndarray]) -> dict[str, Any]:
        generated = [int(t) for t in results[0]]
        eos = probe_input.eos_id
        text_tokens = generated[: generated.index(eos)] if eos in generated else generated
        answer = extract_answer(probe_input.decode(text_tokens), self.pattern)
        return {"generated": generated, "answered": answer is not None, "answer": answer,
                "correct": answer is not None and answer == probe_input.reference_answer}  # fmt: skip
