"""Benchmark contamination (BC), the design of Bordt et al. (2025, "How much can we forget about data contamination?").

Items come from our seeded generator of fictional facts or from an OLMES-style JSONL file
(``{"query", "choices", "gold"}`` or ``{"text": "Question: …\\nAnswer: …"}``), or a
Fictional-Knowledge-style probe file (``{"input", "target"}``, Chang et al. 2024). The treated
text is the question followed by its gold answer, as in the paper.

**The paper's design** is arms, not code: a held-out ``control`` arm and treated arms at
doses 4/12/36/144 (``arms: {control: {dose: 0}, x4: {dose: 4}, x12: …, x144: …}``), plus an
early-window arm at an equal dose (``x144_early: {dose: 144, window: [0.0, 0.25]}``): the
analysis pairs every two inserted arms of equal dose and different windows
(``analysis.over_training.window_pairs``) and reports late minus early as a window contrast,
which measures forgetting. ``designs/contamination-bc.yaml`` is that design at CPU scale.

**Parameters** (``params``): ``primary_outcome`` (``auto``: ranked-choice ``accuracy`` for
files with choices, ``gold_logprob`` otherwise), ``n_choices`` (generated questions),
``answer_marker`` (where a ``text`` record splits into question and answer).

**Probes:** ``gold`` (``logprob`` of the gold answer after its question), ``mc``
(``multiple_choice`` over the choices, when there are choices), and ``gold_unrelated`` /
``mc_unrelated`` (the same after an unrelated question of the same arm).

**Outcomes** (default estimators: Newcombe for accuracy, the design's continuous method
otherwise): for OLMES multiple-choice files the primary outcome is ranked-choice
``accuracy`` (length-normalised log-likelihood, as OLMES ranks), the score a benchmark
reports; ``margin`` is gold minus mean distractor log-prob. ``gold_logprob`` is the
per-token log-prob of the gold answer after its question: what a likelihood-based
benchmark reads, but part of its rise is mere familiarity with the answer string, which
the contaminated text also contains. Two outcomes separate recall from familiarity:

- for generated items the distractors of a question are the gold answers of other
  questions in the same arm, so inside an arm every choice was seen equally often, and
  ranked-choice accuracy and the gold-vs-distractor ``margin`` measure recall only;
- ``recall_contrast`` is the gold log-prob after its own question minus after an unrelated
  question of the same arm (``gold_unrelated``), a within-item familiarity control, and
  ``recall_margin`` does the same for the margin. Every items source gets the unrelated
  question (a text-only file keeps ``gold_logprob`` and ``recall_contrast``; its report
  says that familiarity may drive ``gold_logprob``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designkit.errors import InputError, quote
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec, record_meta
from designkit.kinds.names import invented_names
from designkit.schema import bounded

MAX_GENERATED_QUESTIONS = 10_000_000
"""Invented names run out (and planning takes hours) long before this many questions."""

# (subject, question template, answer name syllables)
_RELATIONS = (
    ("geography", "What is the capital of {entity}?"),
    ("history", "Who founded the city of {entity}?"),
    ("science", "Which element was first found on {entity}?"),
    ("music", "Which band comes from {entity}?"),
)


@dataclass(frozen=True)
class ContaminationParams:
    n_choices: int = bounded(4, ge=2)
    """Choices per generated question (gold plus same-arm distractors)."""
    primary_outcome: Literal["auto", "accuracy", "margin", "gold_logprob", "recall_contrast", "recall_margin"] = "auto"
    """Outcome tested in the confirmatory family; ``auto``: ranked-choice accuracy for a file with
    choices (OLMES multiple choice, as Bordt et al. 2025), gold_logprob otherwise."""
    answer_marker: str = "\nAnswer:"
    """Where a ``text`` record splits into question and answer."""


@dataclass(frozen=True)
class ContaminationGenerate:
    n: int = bounded(ge=1, le=MAX_GENERATED_QUESTIONS)
    """Number of questions to generate."""


class Contamination(ExperimentKind):
    name = "contamination"
    item_noun = ("question", "questions")
    Params = ContaminationParams
    GenerateParams = ContaminationGenerate

    @classmethod
    def check(cls, params: ContaminationParams, options: ContaminationGenerate | None) -> None:
        if not params.answer_marker.strip():
            raise InputError(None, "params.answer_marker", f"expected a non-blank marker, got {quote(params.answer_marker)}")

    def generate(self, options: ContaminationGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        entities = invented_names(options.n, rng)
        answers = invented_names(options.n, rng, taken=set(entities))
        items = []
        for i, (entity, answer) in enumerate(zip(entities, answers)):
            subject, template = _RELATIONS[i % len(_RELATIONS)]
            question = template.format(entity=entity)
            prompt = f"Question: {question}\nAnswer:"
            items.append(
                Item(
                    source_id=f"{i:06d}",
                    text=f"{prompt} {answer}",
                    prompt=prompt,
                    target=f" {answer}",
                    meta={"subject": subject, "entity": entity, "answer": answer, "synthetic": True},
                )
            )
        return items

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        items = []
        for line_no, record in enumerate(records, start=1):
            where = f"{path}:{line_no}"
            source_id = str(record.get("id", record.get("doc_id", f"{line_no - 1:06d}")))
            if "query" in record and "choices" in record:
                items.append(self._from_choices(record, where, source_id))
            elif isinstance(record.get("text"), str):
                items.append(self._from_text(record, where, source_id))
            elif "input" in record and "target" in record:
                items.append(self._from_input_target(record, where, source_id))
            else:
                field = "query" if "query" not in record else "choices"
                raise InputError(where, field, "expected an object with 'query', 'choices' and 'gold' (OLMES multiple choice), with 'text', "
                                               f"or with 'input' and 'target', got the keys {quote(sorted(record))}")
        return items

    def _from_choices(self, record: dict[str, Any], where: str, source_id: str) -> Item:
        query, choices, gold = record["query"], record["choices"], record.get("gold")
        if not isinstance(query, str) or not query.strip():
            raise InputError(where, "query", f"expected a non-empty string, got {quote(query)}")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise InputError(where, "choices", f"expected a list of at least 2 strings, got {quote(choices)}")
        if "gold" not in record:
            raise InputError(where, "gold", f"expected the index of the correct choice (0..{len(choices) - 1}) next to 'choices', found none")
        if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
            raise InputError(where, "gold", f"expected an index into choices (0..{len(choices) - 1}), got {quote(gold)}")
        # OLMES continuations follow the query after one space
        continuations = [c if c.startswith(" ") else f" {c}" for c in choices]
        return Item(
            source_id=source_id,
            text=query + continuations[gold],
            prompt=query,
            target=continuations[gold],
            choices=continuations,
            gold=gold,
            meta=record_meta(record, ("id", "doc_id", "query", "choices", "gold")),
        )

    def _from_text(self, record: dict[str, Any], where: str, source_id: str) -> Item:
        text = record["text"]
        marker = self.params.answer_marker
        cut = text.rfind(marker)
        if cut < 0 or not text[cut + len(marker) :].strip():
            raise InputError(where, "text", f"expected 'Question: …{marker} …' with a non-empty answer")
        prompt = text[: cut + len(marker)]
        answer = text[cut + len(marker) :]
        target = answer if answer.startswith(" ") else f" {answer.lstrip()}"
        return Item(
            source_id=source_id,
            text=text,
            prompt=prompt,
            target=target,
            meta=record_meta(record, ("id", "doc_id", "text")),
        )

    def _from_input_target(self, record: dict[str, Any], where: str, source_id: str) -> Item:
        """A cloze probe: the fact is the input sentence completed by its target."""
        prompt, target = record["input"], record["target"]
        for key, value in (("input", prompt), ("target", target)):
            if not isinstance(value, str) or not value.strip():
                raise InputError(where, key, f"expected a non-empty string, got {quote(value)}")
        target = target if target.startswith(" ") else f" {target}"
        return Item(
            source_id=source_id,
            text=prompt + target,
            prompt=prompt,
            target=target,
            meta=record_meta(record, ("id", "doc_id", "input", "target")),
        )

    def after_assignment(self, items: list[Item], arms: Sequence[str], rng: np.random.Generator) -> list[Item]:
        synthetic = [i for i, item in enumerate(items) if item.meta.get("synthetic")]
        if not synthetic:
            return self._unrelated_prompts(items, arms, rng)
        pools: dict[tuple[str, str], list[int]] = defaultdict(list)
        by_arm: dict[str, list[int]] = defaultdict(list)
        for i in synthetic:
            pools[(arms[i], items[i].meta["subject"])].append(i)
            by_arm[arms[i]].append(i)
        k = self.params.n_choices - 1
        for i in synthetic:
            same = [j for j in pools[(arms[i], items[i].meta["subject"])] if j != i]
            if len(same) < k:  # small arms: fall back to any question of the arm
                same = [j for j in by_arm[arms[i]] if j != i]
            if len(same) < k:
                raise InputError(None, "arms", f"expected at least {k + 1} questions per arm for {k} same-arm distractors")
            picked = rng.choice(len(same), size=k + 1 if len(same) > k else k, replace=False)
            distractors = [items[same[j]].target for j in picked[:k]]
            unrelated = items[same[picked[-1]]].prompt
            gold = int(rng.integers(k + 1))
            choices = distractors[:gold] + [items[i].target] + distractors[gold:]
            items[i].choices, items[i].gold, items[i].alt_prompt = choices, gold, unrelated
        return items

    @staticmethod
    def _unrelated_prompts(items: list[Item], arms: Sequence[str], rng: np.random.Generator) -> list[Item]:
        """For a file's items: each question's familiarity control is another question of its own
        arm (equally often inserted), drawn at random; none when an arm has a single question."""
        by_arm: dict[str, list[int]] = defaultdict(list)
        for i, arm in enumerate(arms):
            by_arm[arm].append(i)
        if min(len(members) for members in by_arm.values()) < 2:
            return items
        for members in by_arm.values():
            for i in members:
                others = [j for j in members if items[j].prompt != items[i].prompt]
                if not others:  # every question of the arm is the same text: no unrelated one exists
                    return items
                items[i].alt_prompt = items[others[int(rng.integers(len(others)))]].prompt
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        probes = [ProbeSpec("gold", "logprob", {"prompt": "prompt_tokens", "target": "target_tokens"})]
        if any(item.choices for item in items):
            probes.append(ProbeSpec("mc", "multiple_choice", {"prompt": "prompt_tokens", "choices": "choices_tokens", "gold": "gold"}))
        if any(item.alt_prompt for item in items):
            probes.append(ProbeSpec("gold_unrelated", "logprob", {"prompt": "alt_prompt_tokens", "target": "target_tokens"}))
            if any(item.choices for item in items):
                probes.append(ProbeSpec("mc_unrelated", "multiple_choice", {"prompt": "alt_prompt_tokens", "choices": "choices_tokens", "gold": "gold"}))
        return probes

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        has_choices = any(item.choices for item in items)
        primary = self.params.primary_outcome
        if primary == "auto":
            from_file = not any(item.meta.get("synthetic") for item in items)
            primary = "accuracy" if has_choices and from_file else "gold_logprob"
        if primary in ("accuracy", "margin") and not has_choices:
            raise InputError(None, "params.primary_outcome", f"expected gold_logprob for items without choices, got {quote(primary)}")
        if primary in ("recall_contrast", "recall_margin") and not any(item.alt_prompt for item in items):
            raise InputError(None, "params.primary_outcome", f"expected gold_logprob: {primary} needs an unrelated question per item (two distinct questions per arm)")
        if primary == "recall_margin" and not has_choices:
            raise InputError(None, "params.primary_outcome", "expected gold_logprob or recall_contrast for items without choices, got 'recall_margin'")
        gold_description = "per-token log-prob of the gold answer after its question"
        if not has_choices:
            gold_description += (". Familiarity, not recall, may drive gold_logprob: the inserted text contains the answer itself, "
                                 "and recall_contrast (the same answer after an unrelated question) separates the two")
        outcomes = [
            OutcomeSpec(name="gold_logprob", probe="gold", column="logprob_per_token", type="continuous", expected_sign=+1, primary=primary == "gold_logprob",
                        description=gold_description),
        ]
        if has_choices:
            n_choices = [len(item.choices) for item in items if item.choices]
            chance = float(np.mean([1.0 / n for n in n_choices]))
            outcomes += [
                OutcomeSpec(name="accuracy", probe="mc", column="correct_norm", type="binary", expected_sign=+1, primary=primary == "accuracy", baseline=chance,
                            description="ranked-choice accuracy (length-normalised log-likelihood)"),
                OutcomeSpec(name="margin", probe="mc", column="margin", type="continuous", expected_sign=+1, primary=primary == "margin",
                            description="gold minus mean distractor per-token log-prob; familiarity-controlled when distractors are equally familiar"),
            ]
        if any(item.alt_prompt for item in items):
            outcomes += [
                OutcomeSpec(name="gold_logprob_unrelated", probe="gold_unrelated", column="logprob_per_token", type="continuous", expected_sign=+1,
                            description="gold answer after an unrelated same-arm question: familiarity alone"),
                OutcomeSpec(name="recall_contrast", probe="gold", column="logprob_per_token", type="continuous", expected_sign=+1,
                            primary=primary == "recall_contrast", minus_probe="gold_unrelated",
                            description="gold log-prob after its own minus after an unrelated question: recall beyond familiarity"),
            ]
            if has_choices:
                outcomes.append(OutcomeSpec(
                    name="recall_margin", probe="mc", column="margin", type="continuous", expected_sign=+1,
                    primary=primary == "recall_margin", minus_probe="mc_unrelated",
                    description="margin after its own minus after an unrelated question: recall, controlling familiarity and answer priors"))
        return outcomes
