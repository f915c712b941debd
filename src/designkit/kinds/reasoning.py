"""Reasoning (MR): multi-step modular arithmetic word problems from seeded templates.

After Ye et al. (2025, *Physics of Language Models 2.1*, the iGSM generator) as used by
Bordt & Pawelczyk (2025, *Train Once, Answer All*): does training on problems of a template
raise the accuracy on *new* problems of that template?

**Generator** (in-project, seeded, ``items.generate``). A template is a dependency graph
of ``steps`` operations (``op``: ``add``, ``sub``, ``mul``, all modulo ``params.modulus``,
default 23) over named quantities: the inputs, then one new quantity per step computed from
an earlier quantity (any one; the last step reads the one before it) and a number. Each
template invents its own vocabulary of ``vocabulary`` names, so two templates share no
13-gram. An *instance* of a template draws the numbers and names its quantities from the
template's vocabulary (as iGSM instances draw entities); its text is the problem, then a
solution with every intermediate step and a final answer line::

    Brak = 5, Tul = Brak + 7, Vem = Tul * 3. Vem?
    Brak = 5, Tul = 5 + 7 = 12, Vem = 12 * 3 = 13.
    Answer: Vem = 13

A template has ``train_problems`` training instances (its payloads, each inserted ``dose``
times in a treated arm; control templates get none) and ``test_problems`` new instances
(its probe instances). Templates are stratified by ``op``, the operation of their last step
(round-robin over ``ops``), and the test answers are balanced: over the experiment each
residue 0..modulus-1 is the answer of equally many test problems (within one).

**Decontamination.** Every test problem (problem and solution) is checked against every
training problem of the experiment, every template's, inserted or not: they may share no
token ``ngram``-gram (13 by default, under the plan's tokenizer; whitespace/punctuation
words when none is given). A generated instance that would share one is redrawn; a test
problem of an items file that shares one is refused in one line naming it.

**Items file** (``.jsonl``): one template per line, ``{"template", "op", "train": [text, …],
"test": [{"problem", "solution"}, …]}``; solutions end in an answer line ``Answer: N`` (or ``Answer: name = N``).

**Parameters.** ``modulus`` (chance accuracy is 1/modulus), ``max_new_tokens`` (the
probe's generation length), ``ngram`` (decontamination window). ``items.generate``: ``n``
templates, ``ops``, ``steps``, ``inputs``, ``vocabulary``, ``train_problems``, ``test_problems``.

**Probe.** ``solve``: the registered ``answer`` probe (``designkit.probes.answer``), a
greedy free generation after the problem that keeps the generated tokens and extracts the
answer with a regex on the first ``Answer: … N`` line, compared with the reference solution's.

**Estimators.** The primary outcome ``accuracy`` (share of a template's test problems
answered correctly: probe instances averaged to the template, the cluster, so it is a
continuous outcome compared by the design's continuous method, Welch by default) compares
treated with control templates, against the chance level 1/modulus as the known control baseline;
``accuracy_by_op`` is the same effect within each ``op`` stratum through the registered
``per_stratum`` estimator; ``answered`` is the share of generations with an answer line
(format learned, not arithmetic).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designkit.errors import InputError, quote
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, Payload, PlanContext, ProbeInstance, ProbeSpec
from designkit.kinds.names import invented_names
from designkit.probes.answer import DEFAULT_ANSWER_PATTERN
from designkit.schema import bounded

OPS: dict[str, tuple[str, str, Callable[[int, int], int]]] = {  # fmt: skip
    "add": ("plus", "+", lambda a, b: a + b),
    "sub": ("minus", "-", lambda a, b: a - b),
    "mul": ("times", "*", lambda a, b: a * b),
}
"""``op``: (word in the problem, symbol in the solution, the operation before the modulus)."""


@dataclass(frozen=True)
class Step:
    """``out = left op right``: ``right`` names an earlier quantity, or None for a number."""

    out: str
    left: str
    op: str
    right: str | None


@dataclass(frozen=True)
class Template:
    """A dependency graph of operations over quantity slots, and the template's own
    vocabulary of names the slots take in each instance (the randomized unit)."""

    inputs: tuple[str, ...]
    steps: tuple[Step, ...]
    vocabulary: tuple[str, ...] = ()
    """Names an instance gives its quantities (drawn without replacement); empty: the slot names."""

    @property
    def op(self) -> str:
        """The operation that produces the answer: the template's stratum."""
        return self.steps[-1].op

    @property
    def n_numbers(self) -> int:
        """Numbers an instance draws: one per input and one per step with a number operand."""
        return len(self.inputs) + sum(s.right is None for s in self.steps)


@dataclass(frozen=True)
class Problem:
    """One instance of a template: its problem text, solution text and answer."""

    problem: str
    solution: str
    answer: int

    @property
    def text(self) -> str:
        return f"{self.problem}\n{self.solution}"


def make_template(names: Sequence[str], n_steps: int, final_op: str, ops: Sequence[str], rng: np.random.Generator,
                  vocabulary: Sequence[str] = ()) -> Template:  # fmt: skip
    """A template over slots ``names`` (``len(names) - n_steps`` inputs, then one quantity per
    step) whose instances name the slots from ``vocabulary``."""
    n_inputs = len(names) - n_steps
    inputs, known, steps = tuple(names[:n_inputs]), list(names[:n_inputs]), []
    for i in range(n_steps):
        op = final_op if i == n_steps - 1 else ops[int(rng.integers(len(ops)))]
        # the last step reads the previous one, so every step is on the answer's path
        left = known[-1] if i == n_steps - 1 else known[int(rng.integers(len(known)))]
        # a number in every step: any 13 tokens of an instance then hold numbers a new instance redraws
        right = None
        steps.append(Step(names[n_inputs + i], left, op, right))
        known.append(names[n_inputs + i])
    return Template(inputs, tuple(steps), tuple(vocabulary))


def instance(template: Template, numbers: Sequence[int], modulus: int, names: Mapping[str, str] | None = None) -> Problem:
    """The problem and solution of ``template`` with ``numbers`` (inputs first, then each
    number operand in step order) and ``names`` for its slots (default: the slot names).

    The text is compact on purpose: a number every few tokens, so that a new instance of
    the template shares no 13-gram with its training instances even under a small
    tokenizer that splits the invented names into single letters."""
    numbers = iter(int(v) for v in numbers)
    names = names or {}
    template = Template(
        tuple(names.get(n, n) for n in template.inputs),
        tuple(Step(names.get(s.out, s.out), names.get(s.left, s.left), s.op, None if s.right is None else names.get(s.right, s.right))
              for s in template.steps),
    )  # fmt: skip
    values: dict[str, int] = {}
    given, worked = [], []
    for name in template.inputs:
        values[name] = next(numbers) % modulus
        given.append(f"{name} = {values[name]}")
        worked.append(f"{name} = {values[name]}")
    for step in template.steps:
        _, symbol, fn = OPS[step.op]
        a = values[step.left]
        b = values[step.right] if step.right is not None else next(numbers) % modulus
        values[step.out] = fn(a, b) % modulus
        given.append(f"{step.out} = {step.left} {symbol} {step.right if step.right is not None else b}")
        worked.append(f"{step.out} = {a} {symbol} {b} = {values[step.out]}")
    answer = values[template.steps[-1].out]
    problem = ", ".join(given) + f". {template.steps[-1].out}?"
    # the answer line names the quantity: "= 7.\nAnswer: 7" alone is 13 tokens under a small
    # tokenizer, which every instance with the same answer would share
    return Problem(problem, ", ".join(worked) + f".\nAnswer: {template.steps[-1].out} = {answer}", answer)


def draw_instance(template: Template, modulus: int, rng: np.random.Generator, answer: int | None = None) -> Problem:
    """A random instance of ``template`` (with ``answer``, if given: drawn until it has it)."""
    slots = list(template.inputs) + [s.out for s in template.steps]
    for _ in range(200 * modulus):
        names = None
        if template.vocabulary:
            chosen = rng.choice(len(template.vocabulary), size=len(slots), replace=False)
            names = {slot: template.vocabulary[int(c)] for slot, c in zip(slots, chosen)}
        problem = instance(template, rng.integers(0, modulus, size=template.n_numbers), modulus, names)
        if answer is None or problem.answer == answer:
            return problem
    raise InputError(None, "items.generate", f"expected templates that can reach answer {answer} mod {modulus}; none drawn")


def word_tokens(text: str) -> list[str]:
    """Words and punctuation marks: the decontamination tokens when no tokenizer is given."""
    return re.findall(r"\w+|[^\w\s]", text)


def ngrams(tokens: Sequence[Any], n: int) -> set[tuple[Any, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class TrainingNgrams:
    """The ``n``-grams of every training problem of an experiment, and which problem has each."""

    def __init__(self, n: int, encode: Callable[[str], Sequence[Any]]):
        self.n, self.encode = n, encode
        self.owner: dict[tuple[Any, ...], str] = {}

    def add(self, text: str, name: str) -> None:
        for gram in ngrams(list(self.encode(text)), self.n):
            self.owner.setdefault(gram, name)

    def shared(self, text: str) -> str | None:
        """The training problem ``text`` shares an ``n``-gram with, or None."""
        for gram in ngrams(list(self.encode(text)), self.n):
            if gram in self.owner:
                return self.owner[gram]
        return None


def balanced_answers(n: int, modulus: int, rng: np.random.Generator) -> list[int]:
    """``n`` answers in which every residue occurs equally often (within one), shuffled."""
    answers = [int(a) for a in np.tile(rng.permutation(modulus), n // modulus + 1)[:n]]
    return [answers[i] for i in rng.permutation(n)]


@dataclass(frozen=True)
class ReasoningParams:
    modulus: int = bounded(23, ge=2, le=997)
    """All arithmetic is modulo this number; chance accuracy is 1/modulus."""
    max_new_tokens: int = bounded(64, ge=1)
    """Tokens the probe generates after each test problem (enough for the solution and its answer line)."""
    ngram: int = bounded(13, ge=2)
    """Decontamination window: a test problem shares no token n-gram of this length with any training problem."""


@dataclass(frozen=True)
class ReasoningGenerate:
    n: int = bounded(ge=2, le=100_000)
    """Templates to invent."""
    ops: list[str] = field(default_factory=lambda: ["add", "sub", "mul"])
    """Operations the templates use; each template's last one is its stratum (round-robin)."""
    steps: int = bounded(2, ge=1, le=12)
    """Operations per template (its dependency graph's quantities beyond the inputs)."""
    inputs: int = bounded(1, ge=1, le=6)
    """Input quantities per template."""
    train_problems: int = bounded(8, ge=1, le=10_000)
    """Training instances per template (the payloads a treated template inserts)."""
    test_problems: int = bounded(4, ge=1, le=10_000)
    """New test instances per template (its probe instances)."""
    vocabulary: int = bounded(8, ge=2, le=1000)
    """Names in each template's own vocabulary; an instance names its quantities from it (at least inputs + steps)."""


class Reasoning(ExperimentKind):
    name = "reasoning"
    item_noun = ("template", "templates")
    Params = ReasoningParams
    GenerateParams = ReasoningGenerate
    probes_held_out = True

    @classmethod
    def check(cls, params: ReasoningParams, options: ReasoningGenerate | None) -> None:
        if options is not None:
            if options.vocabulary < options.inputs + options.steps:
                raise InputError(None, "items.generate.vocabulary", f"expected at least inputs + steps ({options.inputs + options.steps}) "
                                                                    f"names, got {options.vocabulary}")  # fmt: skip
            unknown = [op for op in options.ops if op not in OPS]
            if unknown or not options.ops:
                raise InputError(None, "items.generate.ops", f"expected a non-empty list of {sorted(OPS)}, got {quote(options.ops)}")

    def _encode(self, context: PlanContext | None) -> Callable[[str], Sequence[Any]]:
        tokenizer = getattr(context, "tokenizer", None)
        return tokenizer.encode if tokenizer is not None else word_tokens

    def generate(self, options: ReasoningGenerate, rng: np.random.Generator, context: PlanContext | None) -> list[Item]:
        modulus, ngram = self.params.modulus, self.params.ngram
        per_template = options.inputs + options.steps
        taken: set[str] = set()
        training = TrainingNgrams(ngram, self._encode(context))
        answers = balanced_answers(options.n * options.test_problems, modulus, rng)
        drawn = []
        for t in range(options.n):
            op = options.ops[t % len(options.ops)]
            for _ in range(20):  # a template whose names leave too few tokens between numbers is redrawn
                names = invented_names(options.vocabulary, rng, syllables=(1, 1) if len(taken) < 300 else (1, 2), taken=taken)
                taken.update(names)
                slots = [f"q{k}" for k in range(per_template)]
                template = make_template(slots, options.steps, op, options.ops, rng, vocabulary=names)
                train = [draw_instance(template, modulus, rng) for _ in range(options.train_problems)]
                own = TrainingNgrams(ngram, training.encode)
                for j, problem in enumerate(train):
                    own.add(problem.text, f"template {t:06d} train[{j}]")
                wanted = answers[t * options.test_problems : (t + 1) * options.test_problems]
                tests = [self._new_instance(template, modulus, rng, a, [own, training]) for a in wanted]
                if all(p is not None for p in tests):
                    break
            else:
                raise InputError(None, "items.generate", f"expected templates whose test problems can avoid the training problems' "
                                                         f"{ngram}-grams (fewer train_problems, or a larger modulus); template {t:06d} cannot")  # fmt: skip
            training.owner.update({g: o for g, o in own.owner.items() if g not in training.owner})
            drawn.append((template, train, tests))
        items = []
        for t, (template, train, tests) in enumerate(drawn):
            # a later template's training problems may share numbers with an earlier test problem
            tests = [p if training.shared(p.text) is None else self._new_instance(template, modulus, rng, p.answer, [training]) for p in tests]
            if any(p is None for p in tests):
                raise InputError(None, "items.generate", f"expected test problems sharing no {ngram}-gram with a training problem; "
                                                         f"template {t:06d} has none left")  # fmt: skip
            items.append(self._item(f"{t:06d}", template.op, train, tests))
        return items

    @staticmethod
    def _new_instance(template: Template, modulus: int, rng: np.random.Generator, answer: int, against: Sequence[TrainingNgrams]) -> Problem | None:
        """An instance with ``answer`` sharing no n-gram with the problems of ``against``, or None."""
        for _ in range(300):
            problem = draw_instance(template, modulus, rng, answer)
            if all(grams.shared(problem.text) is None for grams in against):
                return problem
        return None

    def _item(self, source_id: str, op: str, train: Sequence[Problem], tests: Sequence[Problem]) -> Item:
        return Item(
            source_id=source_id,
            payloads=[Payload(text=p.text) for p in train],
            probe_instances=[ProbeInstance(prompt=f"{p.problem}\n", target=p.solution, meta={"answer": p.answer}) for p in tests],
            stratum=f"op={op}",
            meta={"op": op, "answers": [p.answer for p in tests], "synthetic": True},
        )

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext | None) -> list[Item]:
        """Templates from a ``.jsonl`` file; a test problem sharing an ``ngram``-gram with any training problem is refused."""
        answer_line = re.compile(DEFAULT_ANSWER_PATTERN)
        allowed = {"template", "op", "train", "test"}
        training = TrainingNgrams(self.params.ngram, self._encode(context))
        parsed = []
        for line_no, record in enumerate(records, start=1):
            where = f"{path}:{line_no}"
            extra = sorted(set(record) - allowed)
            if extra:
                raise InputError(where, extra[0], f"expected only the keys {sorted(allowed)}, got {quote(extra[0])}")
            train, test = record.get("train"), record.get("test")
            if not isinstance(train, list) or not train or not all(isinstance(t, str) and t.strip() for t in train):
                raise InputError(where, "train", f"expected a non-empty list of training problem texts, got {quote(train)}")
            if not isinstance(test, list) or not test:
                raise InputError(where, "test", f"expected a non-empty list of {{problem, solution}} records, got {quote(test)}")
            tests = []
            for j, entry in enumerate(test):
                if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k].strip() for k in ("problem", "solution")):
                    raise InputError(where, f"test[{j}]", f"expected {{problem, solution}} strings, got {quote(entry)}")
                match = answer_line.search(entry["solution"].splitlines()[-1])
                if match is None:
                    raise InputError(where, f"test[{j}].solution", f"expected a final line 'Answer: N', got {quote(entry['solution'])}")
                tests.append(Problem(entry["problem"], entry["solution"], int(match.group(1))))
            op = record.get("op")
            if op is not None and not isinstance(op, str):
                raise InputError(where, "op", f"expected a string, got {quote(op)}")
            template = str(record.get("template", f"{line_no - 1:06d}"))
            for j, text in enumerate(train):
                training.add(text, f"template {template!r} train[{j}] (line {line_no})")
            parsed.append((where, template, op or "unknown", train, tests))
        items = []
        for where, template, op, train, tests in parsed:
            for j, problem in enumerate(tests):
                owner = training.shared(problem.text)
                if owner is not None:
                    raise InputError(where, f"test[{j}]", f"expected a test problem sharing no {self.params.ngram}-gram with a "
                                                          f"training problem, but it shares one with {owner}")  # fmt: skip
            items.append(Item(source_id=template, payloads=[Payload(text=t) for t in train],
                              probe_instances=[ProbeInstance(prompt=f"{p.problem}\n", target=p.solution, meta={"answer": p.answer}) for p in tests],
                              stratum=f"op={op}", meta={"op": op, "answers": [p.answer for p in tests]}))  # fmt: skip
        return items

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("solve", "answer", {"prompt": "prompt_tokens", "reference": "target_tokens",
                                              "max_new_tokens": self.params.max_new_tokens})]  # fmt: skip

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        chance = 1.0 / self.params.modulus
        outcomes = [
            OutcomeSpec(name="accuracy", probe="solve", column="correct", type="continuous", expected_sign=+1, primary=True, baseline=chance,
                        description=f"share of a template's new test problems answered correctly (chance 1/{self.params.modulus})"),
            OutcomeSpec(name="answered", probe="solve", column="answered", type="continuous", expected_sign=+1,
                        description="share of generations with an answer line (the format, not the arithmetic)"),
        ]  # fmt: skip
        if len({item.stratum for item in items}) > 1:
            outcomes.append(OutcomeSpec(name="accuracy_by_op", probe="solve", column="correct", type="continuous", expected_sign=+1,
                                        estimator="per_stratum", baseline=chance,
                                        description="accuracy effect within each op stratum (the operation producing the answer)"))  # fmt: skip
        return outcomes
