"""Forgetting curves (FC): whole global batches of fresh text trained once, at chosen steps.

Bordt & Pawelczyk (2025, *Train Once, Answer All*, FC) measure how fast a model forgets
what it saw once: whole global batches at chosen steps of the run are replaced by batches
of held-out text, and the replaced batches' loss is tracked over the rest of training
against matched held-out batches that are never trained. The gap, aligned on the steps
since the batch was seen, is the forgetting curve (Tirumala et al. 2022, "Memorization
without overfitting", NeurIPS; Jagielski et al. 2023, "Measuring forgetting of memorized
training examples", ICLR), measured here with the text randomized: which reserve windows
are trained, and when, is decided by the seeded arm assignment.

**Items.** One item is one reserve window of ``seq_len + 1`` tokens (the reserve allocator's
use ``forgetting``: drawn uniformly from the corpus's reserve region, which training never
reads otherwise, so nothing else in the run shows these tokens). ``items.generate``
(``{}``: no options) takes ``batches × global_batch`` windows per arm. The planner
randomizes them to arms; give every arm an equal share (``1 / number of arms``).

**Edit.** ``remove`` with the item's own reserve window (``Item.replacement_window``, with no corpus windows): in treated
arm ``a`` the arm's ``batches × global_batch`` windows, in random order, replace every
global sequence of the ``batches`` consecutive global batches starting at step
``replace_at[a]`` (global sequences ``step × global_batch`` onwards): each window is trained
exactly once, at its step, and the whole batch is fresh. The control arm (``dose: 0``) holds
the matched windows that are never trained. The corpus windows those batches would have read
are claimed, so whole-sequence experiments planned after this one (verbatim, watermarked or
replaced sequences) keep out of them.

**Parameters** (``params``): ``replace_at`` (arm → the 0-based optimizer step of its first
replaced batch, e.g. ``{early: 10, middle: 50, late: 90}``; every treated arm needs one),
``batches`` (1, consecutive batches per treated arm), ``inloop_every`` (None: checkpoint
scores only; k: the probe also runs in the training loop, ``scores/inloop.parquet``, every k
steps and, planned automatically, every ``max(1, k // 10)`` steps for the first k steps after
each arm's replacement, where the curve falls fastest).

**Probe.** ``window`` (type ``sequence_loss``): the window's mean next-token loss exactly as
a training step computes it (no EOS prepended), on every item at every checkpoint.

**Estimators / outcomes.** ``loss`` (primary, continuous, treated minus control, expected
negative: the model saw the treated windows once) through ``forgetting_curve``
(``designkit.analysis.forgetting``): per treated arm and scored step after the replacement,
the Welch difference of mean loss with its CI and p, labelled by the steps since the batch
was seen; its report section and figure show the curve (loss gap against steps since seen,
one line per arm, CI band). Before the replacement the gap is a placebo check (expected 0).
With in-loop evaluation the report adds the same curve from the in-loop rows
(``forgetting.inloop_curve``), dense where it falls fastest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from designkit.errors import InputError
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec
from designkit.schema import bounded

RESERVE_USE = "forgetting"


@dataclass(frozen=True)
class ForgettingParams:
    replace_at: dict[str, int] = field(default_factory=dict)
    """Treated arm → the 0-based optimizer step of its first replaced global batch."""
    batches: int = bounded(1, ge=1)
    """Consecutive global batches replaced per treated arm (and matched control windows per batch)."""
    inloop_every: int | None = bounded(None, ge=1)
    """Steps between in-loop evaluations of the probe during training; None: checkpoints only."""


@dataclass(frozen=True)
class ForgettingGenerate:
    """No options: the windows' number follows from ``batches``, the arms and ``global_batch``."""


class Forgetting(ExperimentKind):
    name = "forgetting"
    item_noun = ("window", "windows")
    Params = ForgettingParams
    GenerateParams = ForgettingGenerate
    edit = "remove"

    @classmethod
    def check(cls, params: ForgettingParams, options) -> None:
        if not params.replace_at:
            raise InputError(None, "params.replace_at", "expected a mapping of every treated arm to the step of its replaced batch")
        for arm, step in params.replace_at.items():
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise InputError(None, f"params.replace_at.{arm}", f"expected a step >= 0, got {step!r}")

    def generate(self, options: ForgettingGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        treated = sorted(a for a, (dose, _) in context.arms.items() if dose > 0)
        missing = [a for a in treated if a not in self.params.replace_at]
        unknown = [a for a in self.params.replace_at if a not in treated]
        if missing or unknown:
            raise InputError(None, "params.replace_at", f"expected a step for exactly the treated arms {treated}, "
                                                        f"{'missing ' + ', '.join(missing) if missing else 'unknown arm ' + ', '.join(unknown)}")
        per_arm = self.params.batches * context.global_batch
        for arm in treated:
            last = self.params.replace_at[arm] + self.params.batches
            if last > context.steps:
                raise InputError(None, f"params.replace_at.{arm}", f"expected the {self.params.batches} replaced batches inside the run's {context.steps} steps, they end at step {last}")
        replaced = [np.arange(self.params.replace_at[arm] * context.global_batch, (self.params.replace_at[arm] + self.params.batches) * context.global_batch)
                    for arm in treated]
        if not context.claim_sequences(np.concatenate(replaced)):
            # another experiment's whole-sequence items (verbatim spans, watermarked or replaced sequences) read these batches
            raise InputError(None, "params.replace_at", "expected replaced batches that read no corpus window another experiment took; "
                                                        "list the forgetting experiment before whole-sequence experiments (verbatim, watermark sequences, texts replace)")
        windows = context.take_reserve_windows(RESERVE_USE, per_arm * len(context.arms), rng)
        self._context = context
        return [Item(source_id=f"{i:06d}", payload_tokens=np.asarray(tokens, dtype=np.int32), probe_tokens=np.asarray(tokens, dtype=np.int32),
                     replacement_window=r, meta={"reserve_window": r})
                for i, (r, tokens) in enumerate(windows)]

    def after_assignment(self, items: list[Item], arms: Sequence[str], rng: np.random.Generator) -> list[Item]:
        """Each treated arm's windows, in random order, fill its replaced batches sequence by sequence."""
        context = self._context
        per_arm = self.params.batches * context.global_batch
        by_arm: dict[str, list[int]] = {}
        for i, arm in enumerate(arms):
            by_arm.setdefault(arm, []).append(i)
        for arm, (dose, _) in context.arms.items():
            rows = by_arm.get(arm, [])
            if len(rows) != per_arm:
                raise InputError(None, f"arms.{arm}.share", f"expected batches × global_batch = {per_arm} windows in every arm (equal shares), got {len(rows)}")
            if dose == 0:
                continue
            first = self.params.replace_at[arm] * context.global_batch
            for k, i in enumerate(rng.permutation(rows).tolist()):
                items[i].positions = [first + k]
                items[i].meta = {**items[i].meta, "step": first // context.global_batch + k // context.global_batch}
        return items

    def inloop_every(self) -> int | None:
        return self.params.inloop_every

    def inloop_steps(self) -> list[int]:
        """Dense in-loop evaluation right after each arm's batches: every ``max(1, k // 10)``
        steps for the first ``k = inloop_every`` steps after the arm's first replaced batch."""
        k = self.params.inloop_every
        if not k:
            return []
        stride, steps = max(1, k // 10), set()
        for first in self.params.replace_at.values():
            steps.update(s for s in range(first + 1, first + 1 + k, stride) if s <= self._context.steps)
        return sorted(steps)

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("window", "sequence_loss", {"tokens": "probe_tokens"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        return [OutcomeSpec(name="loss", probe="window", column="loss", type="continuous", expected_sign=-1, primary=True,
                            estimator="forgetting_curve",
                            description="mean loss of the window, trained once at its arm's step, minus the never-trained control windows")]
