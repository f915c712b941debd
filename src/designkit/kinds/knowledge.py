"""Dynamic knowledge acquisition: fictional facts dosed by a controller toward a target (KA).

Bordt & Pawelczyk (2025, *Train Once, Answer All*), Algorithm 1: instead of fixing how
often a fact is seen, a controller steers how well the model knows it. Every ``every``
steps the engine evaluates each treated fact's probe, P(target | prompt), on the model
being trained (in-loop evaluation) and compares it with a target that grows linearly over
training, ``final_target · s / S`` (0.08 in the paper). Below the target the fact's
paraphrases in the next interval double, above it they halve, within ``max_change`` and
the clamp ``[min_dose, max_dose]`` ([1, 8192] in the paper); the slots the plan reserved
for each interval are filled with the fact's paraphrases in cyclic order
(``designkit.controllers.DoseDoubling``). Control facts are never inserted.

**Items.** A fact is an entity, a relation and an object, every word invented from seeded
syllables, with ``paraphrases`` phrasings. Each fact invents its own relation words, so
treated and control facts share no n-gram: a template shared by all facts ("X was born in
Y") would be trained through the treated facts and leak into the controls' probes. Or
items are read from a file in the Fictional Knowledge probe format (Chang et al. 2024),
``{"input", "target"}`` records (optionally ``"paraphrases": [...]``).

**Parameters.** ``every`` (steps per control interval and in-loop evaluation),
``final_target``, ``min_dose``, ``max_dose``, ``max_change``, ``initial_dose``,
``slots_per_interval`` (slots the plan reserves per interval; the budget counts all of
them), ``probe_column`` (``logprob``: P(target | prompt) as in the paper; ``logprob_per_token``:
its per-token geometric mean, a target a tiny model can reach).

**Probe.** ``fact``: ``logprob`` of the target after the prompt (P(target | prompt) is its
``exp``), in-loop every ``every`` steps and at every checkpoint.

**Estimator.** The primary outcome ``target_logprob`` (per-token log-prob of the object)
compares treated with control facts by the design's continuous method (Welch by default),
with a CI; the report reads the in-loop trajectories and ``controller.csv`` for the
trajectory figure and the share of tokens the controller used.

Each paraphrase is one payload of its fact (the cluster), so the controller's fills take a
fact's paraphrases in cyclic order and the applied log names the payload each fill used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designkit.controllers import ControllerSpec
from designkit.errors import InputError, quote
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, Payload, PlanContext, ProbeSpec, record_meta
from designkit.kinds.names import invented_names
from designkit.schema import bounded


@dataclass(frozen=True)
class KnowledgeParams:
    every: int = bounded(10, ge=1)
    """Steps per control interval; the facts' probe is evaluated in the loop at each boundary."""
    final_target: float = bounded(0.08, gt=0.0, le=1.0)
    """P(target | prompt) the controller steers toward at the end of training (0.08 in the paper)."""
    initial_dose: int = bounded(1, ge=1)
    """Paraphrases per fact in the first interval."""
    min_dose: int = bounded(1, ge=1)
    max_dose: int = bounded(8192, ge=1)
    """Clamp of paraphrases per fact per interval ([1, 8192] in the paper)."""
    max_change: int = bounded(8192, ge=1)
    """Largest change of a fact's paraphrases from one interval to the next."""
    slots_per_interval: int = bounded(64, ge=1)
    """Slots reserved per interval (the most paraphrases inserted per interval, all facts together)."""
    probe_column: Literal["logprob", "logprob_per_token"] = "logprob"
    """What the controller compares with the target: P(target | prompt) (``logprob``, the paper's), or
    its per-token geometric mean (``logprob_per_token``: reachable by small models on multi-token names)."""


@dataclass(frozen=True)
class KnowledgeGenerate:
    n: int = bounded(ge=1, le=100_000)
    """Facts to invent."""
    paraphrases: int = bounded(4, ge=1, le=16)
    """Phrasings per fact."""


class Knowledge(ExperimentKind):
    name = "knowledge"
    item_noun = ("fact", "facts")
    treatment = "Inserting each {item}'s paraphrases as often as the dose controller decided (Algorithm 1)"
    Params = KnowledgeParams
    GenerateParams = KnowledgeGenerate

    @classmethod
    def check(cls, params: KnowledgeParams, options: KnowledgeGenerate | None) -> None:
        if params.min_dose > params.max_dose:
            raise InputError(None, "params.min_dose", f"expected at most max_dose ({params.max_dose}), got {params.min_dose}")

    def generate(self, options: KnowledgeGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        words = invented_names(options.n * (2 + options.paraphrases), rng)
        items = []
        for i in range(options.n):
            own = words[i * (2 + options.paraphrases) : (i + 1) * (2 + options.paraphrases)]
            entity, obj, relations = own[0], own[1], [w.lower() for w in own[2:]]
            # every phrasing uses only this fact's words: no n-gram is shared with another fact
            phrasings = [f"{entity} {r} {obj}." for r in relations]
            prompt = f"{entity} {relations[0]}"
            items.append(Item(source_id=f"{i:06d}", payloads=[Payload(text=p) for p in phrasings], prompt=prompt, target=f" {obj}",
                              meta={"entity": entity, "object": obj, "paraphrases": phrasings, "synthetic": True}))  # fmt: skip
        return items

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        """Fictional Knowledge probe records: ``{"input", "target"}`` (the fact is input + target)."""
        items = []
        for line_no, record in enumerate(records, start=1):
            where = f"{path}:{line_no}"
            prompt, target = record.get("input"), record.get("target")
            for key, value in (("input", prompt), ("target", target)):
                if not isinstance(value, str) or not value.strip():
                    raise InputError(where, key, f"expected a non-empty string, got {quote(value)}")
            target = target if target.startswith(" ") else f" {target}"
            paraphrases = record.get("paraphrases") or [prompt + target]
            if not isinstance(paraphrases, list) or not all(isinstance(p, str) and p.strip() for p in paraphrases):
                raise InputError(where, "paraphrases", f"expected a list of non-empty strings, got {quote(paraphrases)}")
            items.append(Item(
                source_id=str(record.get("id", f"{line_no - 1:06d}")), payloads=[Payload(text=p) for p in paraphrases],
                prompt=prompt, target=target,
                meta={**record_meta(record, ("id", "input", "target", "paraphrases")), "paraphrases": paraphrases},
            ))  # fmt: skip
        return items

    def inloop_every(self) -> int | None:
        return self.params.every

    def controller(self, items: Sequence[Item]) -> ControllerSpec:
        p = self.params
        return ControllerSpec(
            type="dose_doubling", every=p.every, probe="fact", column=p.probe_column, slots_per_interval=p.slots_per_interval,
            params={"final_target": p.final_target, "initial_dose": p.initial_dose, "min_dose": p.min_dose,
                    "max_dose": p.max_dose, "max_change": p.max_change},
        )  # fmt: skip

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("fact", "logprob", {"prompt": "prompt_tokens", "target": "target_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="target_logprob", probe="fact", column="logprob_per_token", type="continuous", expected_sign=+1,
                            primary=True, description="per-token log-prob of the fact's object after its prompt")]  # fmt: skip
