"""The contract of an experiment kind.

A kind says how to get items (generate them from a seed, or read a user's file), how a
treated item becomes training text, which probes score it on a checkpoint and which
outcome the analysis tests. It never touches the engine or the analysis: probes and
outcomes are declared as data (see docs/formats.md) that the engine and the statistics
implement once for every kind.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from designkit.controllers import ControllerSpec
from designkit.errors import InputError
from designkit.plan_types import EditKind, OutcomeSpec, ProbeSpec

__all__ = ["ExperimentKind", "Item", "OutcomeSpec", "Payload", "PlanContext", "ProbeInstance", "ProbeSpec", "record_meta"]


@dataclass
class Payload:
    """One training text of an item, placed in the run with its own repetitions.

    Give ``text`` (tokenized once at plan time) or ``tokens`` (exact ids: random-token
    canaries, corpus excerpts). An item's payloads are, for example, the paraphrases of a
    fact, the training problems of a reasoning template, the documents of a poisoning
    trigger, or the paragraphs of a long document.
    """

    text: str | None = None
    tokens: list[int] | np.ndarray | None = None


@dataclass
class ProbeInstance:
    """One probe instance of an item: the probe fields of one test problem, one held-out
    prompt, one question. Same field names and meanings as ``Item``'s probe fields, so a
    probe spec reads ``prompt_tokens`` the same way from either; ``meta`` is stored as
    ``instance_meta`` (JSON) in ``probe_instances.parquet``."""

    prompt: str | None = None
    target: str | None = None
    alt_prompt: str | None = None
    choices: list[str] | None = None
    gold: int | None = None
    probe_text: str | None = None
    prompt_tokens: list[int] | np.ndarray | None = None
    target_tokens: list[int] | np.ndarray | None = None
    probe_tokens: list[int] | np.ndarray | None = None
    alt_probe_tokens: list[int] | np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Item:
    """One item before planning: the randomized unit (the cluster of the analysis).

    **Payloads** (what training sees). The shorthand is one payload: ``text`` or
    ``payload_tokens``. An item with several training texts lists them in ``payloads``
    instead (``Payload(text=…)`` or ``Payload(tokens=…)``); then ``text`` is only the
    item's label in ``items.parquet`` (default: the first payload's text). How the arm's
    ``dose`` spreads over payloads is the kind's ``dose_counts``: ``"payload"`` (default)
    places every payload ``dose`` times; ``"item"`` places the item ``dose`` times in all,
    cycling over its payloads in time order (insertion ``k`` of the item is payload
    ``k mod n_payloads``). Each payload is its own row of ``payloads.parquet`` and
    placements name it (``payload_index``).

    **Probe instances** (what a checkpoint is asked). The shorthand is the probe fields on
    the item itself (``prompt``, ``target``, ``probe_tokens``, …): one instance. An item
    with several test problems or prompts lists them in ``probe_instances``
    (``ProbeInstance(prompt=…, target=…)``); the item's own probe fields are then ignored.
    Every probe of the experiment scores every instance; scores rows carry ``instance``
    next to ``item_index``, and the analysis aggregates instances to the item before
    testing (``OutcomeSpec.aggregate``). A kind whose instances are held out from its
    payloads (new test problems, not the training text itself) sets
    ``ExperimentKind.probes_held_out``, and the planner checks them against the training
    payloads for n-gram overlap.

    Token fields override tokenizing the text fields; they are lists of ints or 1-D integer
    numpy arrays (rows of one array keep 100k items small).

    Example (a template with three training problems and two test problems)::

        Item(source_id="t07",
             payloads=[Payload(text=p) for p in train_problems],
             probe_instances=[ProbeInstance(prompt=q, target=a) for q, a in test_problems])
    """

    source_id: str
    text: str | None = None
    """Training text (single payload); None when ``payload_tokens`` or ``payloads`` is given."""
    payload_tokens: list[int] | np.ndarray | None = None
    """Exact training tokens (random-token canaries, corpus excerpts)."""
    prompt: str | None = None
    target: str | None = None
    """Continuation of ``prompt`` (include its leading space)."""
    alt_prompt: str | None = None
    """An unrelated prompt, to score ``target`` without its own context (familiarity control)."""
    choices: list[str] | None = None
    """Continuations of ``prompt``, one of them ``choices[gold]``."""
    gold: int | None = None
    probe_text: str | None = None
    prompt_tokens: list[int] | np.ndarray | None = None
    target_tokens: list[int] | np.ndarray | None = None
    probe_tokens: list[int] | np.ndarray | None = None
    alt_probe_tokens: list[int] | np.ndarray | None = None
    """Tokens scored as a within-item control text (e.g. the canary's tokens shuffled)."""
    stratum: str | None = None
    positions: list[int] | None = None
    """Explicit global sequence indices for the item's insertions, if the file gives them
    (one payload, or ``dose_counts = "item"``: one index per insertion of the item)."""
    corpus_window: int | None = None
    """Whole-sequence kinds (``edit`` ``remove``/``noise``): the training-region window this
    item is; every sequence of the run that reads it is edited (from ``PlanContext.sample_run_windows``)."""
    corpus_windows: Sequence[int] | None = None
    """Instead of ``corpus_window``: every training-region window the item occupies (a span
    that recurs in the corpus or straddles two windows, from ``PlanContext.find_spans``);
    every sequence of the run that reads any of them is edited."""
    replacement_window: int | None = None
    """``remove`` items only: the reserve window (taken with ``PlanContext.take_reserve_windows``)
    that replaces every sequence the item's windows are read in, instead of a fresh one per
    visit (the texts kind's i.i.d. replacement: the reserve document is the item). Without
    corpus windows the item is that reserve window itself: treated, it replaces exactly the
    global sequences in ``positions`` (one visit each, e.g. a whole batch at a chosen step, FC);
    control, it is never trained."""
    meta: dict[str, Any] = field(default_factory=dict)
    payloads: list[Payload] | None = None
    """Several training texts (see above); None: the single payload ``text``/``payload_tokens``."""
    probe_instances: list[ProbeInstance] | None = None
    """Several probe instances (see above); None: one instance, the item's own probe fields."""

    def all_payloads(self) -> list[Payload]:
        """The item's payloads, the single-payload shorthand included."""
        if self.payloads is not None:
            return list(self.payloads)
        return [Payload(text=self.text if self.payload_tokens is None else None, tokens=self.payload_tokens)]

    def all_probe_instances(self) -> list[Any]:
        """The item's probe instances; the shorthand is the item itself (same field names)."""
        return list(self.probe_instances) if self.probe_instances is not None else [self]


class PlanContext:
    """What a kind may use while making items: the tokenizer, the run's corpus windows and
    the reserve region (in disjoint, named windows).

    ``run_windows`` and ``reserve`` are the planner's (``designkit.planning``); a kind only
    calls the methods below, so it never imports the planner.
    """

    def __init__(self, tokenizer, reserve_tokens: np.ndarray, eos_id: int, *, run_windows=None, reserve=None):
        self.tokenizer = tokenizer
        self.reserve_tokens = reserve_tokens
        self.eos_id = eos_id
        self.run_windows = run_windows
        self.reserve = reserve
        self.experiment = ""
        """The experiment whose items are being made (set by the planner; names reserve uses)."""
        self.base_dir: Path | None = None
        """The design file's directory (set by the planner): paths in ``items.generate`` are relative to it."""
        self.global_batch = 0
        self.steps = 0
        """The run's geometry (set by the planner): sequences per optimizer step, and steps."""
        self.arms: dict[str, tuple[int, tuple[float, float]]] = {}
        """The experiment's arms (set by the planner): name → (dose, window as fractions of the run)."""

    def sample_run_windows(self, n: int, rng: np.random.Generator) -> list[int]:
        """``n`` distinct training-region windows that the run reads at least once and that no
        other experiment took: the items of a whole-sequence (remove/noise) kind."""
        if self.run_windows is None:
            raise InputError(None, "items.generate", "expected a planner context with the run's corpus windows")
        return [int(w) for w in self.run_windows.sample(n, rng)]

    def window_tokens(self, window: int) -> list[int]:
        """The ``seq_len + 1`` tokens of training-region window ``window``."""
        return [int(t) for t in self.run_windows.tokens(window)]

    def sample_run_spans(self, n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` spans of ``length`` tokens starting at uniformly drawn positions of windows the
        run reads (drawn with replacement, nothing claimed): ``(corpus starts, (n, length) tokens)``."""
        if self.run_windows is None:
            raise InputError(None, "items.generate", "expected a planner context with the run's corpus windows")
        return self.run_windows.sample_spans(n, length, rng)

    def find_spans(self, spans) -> Any:
        """Where the run trains each of ``spans`` (a ``(n, length)`` token array): a
        ``designkit.planning.span_finder.SpanHits`` over the training region (occurrences,
        windows touched, straddling included, and the sequences of the run reading them),
        plus ``in_reserve`` (bool per span: it also occurs in the reserve region, so a
        replacement window could bring it back)."""
        if self.run_windows is None:
            raise InputError(None, "items.generate", "expected a planner context with the run's corpus windows")
        return self.run_windows.find_spans(spans)

    def claim_windows(self, windows) -> bool:
        """Claim training-region ``windows`` for this experiment's items (no other experiment's
        whole-sequence items can use them); False, claiming nothing, if one is already taken."""
        if self.run_windows is None:
            raise InputError(None, "items.generate", "expected a planner context with the run's corpus windows")
        return self.run_windows.claim(windows)

    def claim_sequences(self, global_seqs) -> bool:
        """Claim the training-region windows that run sequences ``global_seqs`` read, so no
        other experiment's whole-sequence items use them (e.g. batches a kind replaces); False,
        claiming nothing, if one is already taken."""
        if self.run_windows is None:
            raise InputError(None, "items.generate", "expected a planner context with the run's corpus windows")
        return self.run_windows.claim(self.run_windows.order.window_of(np.asarray(global_seqs, dtype=np.int64)).tolist())

    def take_reserve_windows(self, use: str, n: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
        """``n`` reserve windows as ``(index, tokens)``, now owned by ``use`` of this experiment
        (no other use can draw them); ``reserved.parquet`` records them."""
        if self.reserve is None:
            raise InputError(None, "items.generate", "expected a planner context with the reserve region")
        chosen = self.reserve.take(use, n, rng, experiment=self.experiment)
        width = self.reserve.window_tokens
        return [(r, [int(t) for t in self.reserve_tokens[r * width : (r + 1) * width]]) for r in chosen.tolist()]


TREATMENT_BY_EDIT = {
    "insert": "Inserting each {item} {times}",
    "remove": "Replacing every sequence that reads each {item} with a reserve window",
    "noise": "Adding embedding noise to every sequence that reads each {item}",
}


class ExperimentKind(ABC):
    """Subclass per kind; register it in ``designkit.kinds.KINDS``."""

    name: ClassVar[str]
    Params: ClassVar[type]
    """Dataclass of kind-specific ``params``; each field documented under it."""
    GenerateParams: ClassVar[type | None] = None
    """Dataclass of ``items.generate`` options, or None if the kind cannot generate items."""
    edit: ClassVar[EditKind] = "insert"
    """The edit each treated item gets in training (docs/formats.md, "Token positions"):

    - ``insert``: the item's tokens (EOS-wrapped) at ``dose`` offsets of the run;
    - ``remove``: the item is a corpus window (``Item.corpus_window``) or several
      (``Item.corpus_windows``, e.g. every window a span occurs in); every sequence in the
      arm's window of the run that reads one is swapped for a fresh reserve window;
    - ``noise``: the same sequences keep their tokens and get seeded Gaussian noise on
      their input embeddings (GW).

    The planner places ``remove``/``noise`` edits first and keeps insertions out of those
    sequences (and out of the control items' sequences, so controls stay untouched).
    """
    dose_counts: ClassVar[Literal["payload", "item"]] = "payload"
    """How an arm's ``dose`` counts for items with several payloads: ``payload`` places each
    payload ``dose`` times; ``item`` places the item ``dose`` times in all, cycling over its
    payloads in time order (the paper's knowledge acquisition fills paraphrases cyclically)."""
    probes_held_out: ClassVar[bool] = False
    """True when probe instances are new texts, held out from the payloads (test problems of a
    reasoning template, held-out prompts of a trigger). The planner then checks that no
    instance shares an n-gram with an inserted payload of its experiment (``plan.json``
    ``spillover``). False when the probes read the training text itself (canaries, texts)."""
    item_noun: ClassVar[tuple[str, str]] = ("item", "items")
    """What one item is called in the report's prose: (singular, plural)."""
    treatment: ClassVar[str | None] = None
    """How the report's prose names an arm's treatment: a format string with ``{item}`` (the
    singular noun) and ``{times}`` (the dose: "once", "4 times"). None: from ``edit``
    (``TREATMENT_BY_EDIT``)."""

    def __init__(self, params: Any):
        self.params = params

    def noise_std(self, arm: str) -> float:
        """Std of the embedding noise on each edit of a treated item of ``arm`` (0: none).

        For ``noise`` kinds it must be positive. An ``insert`` kind may return a positive
        std too: the noise then covers the inserted span at every repetition, with one seed
        per item, so an inserted text carries the same watermark each time it is seen.
        """
        return 0.0

    @classmethod
    def check(cls, params: Any, options: Any | None) -> None:
        """Checks across fields of ``params`` and ``items.generate`` (None for an items file), run
        when the design is read. Raise ``InputError(None, "params.KEY" or "items.generate.KEY", …)``;
        the design reader names the file and the experiment."""

    def generate(self, options: Any, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        raise InputError(None, "items.generate", f"kind {self.name!r} cannot generate items; give an items file")

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        """Turn the records of a .jsonl/.parquet items file into items."""
        raise InputError(path, None, f"kind {self.name!r} cannot read items files; use items.generate")

    def after_assignment(self, items: list[Item], arms: Sequence[str], rng: np.random.Generator) -> list[Item]:
        """Fill probe fields that depend on the arm assignment (e.g. same-arm distractors)."""
        return items

    def inloop_every(self) -> int | None:
        """Steps between in-loop evaluations of this experiment's probes during training
        (``scores/inloop.parquet``), or None for checkpoint scores only."""
        return None

    def inloop_steps(self) -> Sequence[int]:
        """Further steps (after that many optimizer steps) at which this experiment's probes
        are evaluated in the loop, e.g. densely right after a treatment; none by default."""
        return ()

    def controller(self, items: Sequence[Item]) -> ControllerSpec | None:
        """A run-time dose controller for the treated items (``designkit.controllers``), or None.

        A controlled experiment gets no planned insertions: the plan reserves slots in every
        control interval and the controller fills them during training.
        """
        return None

    @abstractmethod
    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]: ...

    @abstractmethod
    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]: ...


def record_meta(record: dict[str, Any], used: Sequence[str]) -> dict[str, Any]:
    """The fields of a source record that the kind did not consume, kept as item metadata."""
    return {k: v for k, v in record.items() if k not in used and _json_safe(v)}


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
