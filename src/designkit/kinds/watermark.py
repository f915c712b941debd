"""Gaussian embedding watermarks (GW): does training on a text leave a detectable trace?

Following Pawelczyk et al. (2024, "Machine Unlearning Fails to Remove Data Poisoning
Attacks") and its use in Bordt & Pawelczyk (2025, *Train Once, Answer All*), each treated
item is trained with a watermark: Gaussian noise eps ~ N(0, sigma^2 I) added to the input
embeddings of its span, the same eps at every repetition (re-derived from the item's seed,
never stored). The watermark is then tested for at every checkpoint from the gradient of
the loss at the item's *clean* embeddings.

**Items** (``params.target``):

- ``texts`` (default): texts inserted ``dose`` times with their watermark on the inserted span
  (``EOS + text + EOS``). ``items.generate: {n, n_tokens}`` draws i.i.d. excerpts of the
  corpus's reserve region (one reserve window each, from the planner's reserve allocator,
  never read by training otherwise); an items file gives texts (JSONL field ``params.key``).
- ``sequences``: whole base sequences. ``items.generate: {n}`` draws training-region windows
  the run reads; every sequence of a treated arm that reads its window is trained with its
  watermark on all ``seq_len`` input positions (the arm's dose only marks it treated: the
  run reads a window as often as its epochs say).

**Arms** cover repetition counts (``dose``) and/or watermark strengths: ``params.sigma`` is
every treated arm's std (default 0.075, the paper's), ``params.arm_sigma: {arm: std}``
overrides it per arm. **Control items** (dose 0) get a fresh watermark seed that is never
trained: their statistic is the null distribution, measured.

**Probe** ``watermark`` (type ``watermark_gradient``): x = grad_e loss . eps / (sigma ||grad_e loss||)
at the clean embeddings of the span's tokens. A never-trained watermark gives x ~ N(0, 1)
exactly; training on e + eps pushes x negative (see ``designkit.probes.watermark`` for why).

**Outcomes and estimators** (all on the probe's ``wm_stat``; one-sided, H1: E[x] < 0):

- ``mean_shift`` (primary, ``watermark_shift``): the fitted mean shift mu of each arm's x with
  its t confidence interval and a one-sided one-sample t-test of mu < 0;
- ``detected`` (``watermark_item_p``): each item's one-sided p = Phi(x) and, per arm, the share
  of items detected at alpha with the binomial test of that share against alpha;
- ``tpr_at_1pct_fpr`` (``watermark_tpr``): the share of items with x below the N(0, 1) 1%
  quantile (the threshold of a 1% false-positive rate) with a bootstrap CI
  (``scipy.stats.bootstrap``), and each arm's realised rate;
- ``calibration`` (``watermark_calibration``): a KS test that the control arm's x is N(0, 1)
  (``ks_normal``); if it is not, the statistic is miscalibrated and the report says so first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designkit.errors import InputError
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec, record_meta
from designkit.schema import bounded

PAPER_SIGMA = 0.075
"""The watermark std of Bordt & Pawelczyk (2025)."""


@dataclass(frozen=True)
class WatermarkParams:
    target: Literal["texts", "sequences"] = "texts"
    """What carries a watermark: inserted texts (``texts``) or whole base sequences (``sequences``)."""
    sigma: float = bounded(PAPER_SIGMA, gt=0)
    """Std of every treated arm's watermark noise (the paper's 0.075)."""
    arm_sigma: dict[str, float] = field(default_factory=dict)
    """Per-arm std overrides, ``{arm: std}`` (arms at several watermark strengths)."""
    key: str = "text"
    """Field of each JSONL record that holds the text (``target: texts`` with an items file)."""


@dataclass(frozen=True)
class WatermarkGenerate:
    n: int = bounded(ge=1)
    """Number of items (texts drawn from the reserve region, or training windows)."""
    n_tokens: int = bounded(32, ge=1)
    """Tokens per text (``target: texts``; at most ``seq_len - 2``, with the EOS wrap)."""


class Watermark(ExperimentKind):
    name = "watermark"
    item_noun = ("watermarked item", "watermarked items")
    Params = WatermarkParams
    GenerateParams = WatermarkGenerate

    def __init__(self, params: WatermarkParams):
        super().__init__(params)
        # texts are inserted with noise on their span; base sequences keep their tokens and get noise
        self.edit = "noise" if params.target == "sequences" else "insert"
        if params.target == "sequences":
            self.item_noun = ("watermarked sequence", "watermarked sequences")

    @classmethod
    def check(cls, params: WatermarkParams, options: Any | None) -> None:
        for arm, std in params.arm_sigma.items():
            if not (std > 0 and np.isfinite(std)):
                raise InputError(None, f"params.arm_sigma.{arm}", f"expected a positive std, got {std}")
        if params.target == "sequences" and options is None:
            raise InputError(None, "items", "expected items.generate for target: sequences (the items are the run's own windows)")

    def after_assignment(self, items: list[Item], arms: Sequence[str], rng: np.random.Generator) -> list[Item]:
        unknown = sorted(set(self.params.arm_sigma) - set(arms))
        if unknown:
            raise InputError(None, f"params.arm_sigma.{unknown[0]}", f"expected an arm of this experiment ({', '.join(sorted(set(arms)))})")
        return items

    def noise_std(self, arm: str) -> float:
        return float(self.params.arm_sigma.get(arm, self.params.sigma))

    def generate(self, options: WatermarkGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        if self.params.target == "sequences":
            items = []
            for i, window in enumerate(context.sample_run_windows(options.n, rng)):
                tokens = context.window_tokens(window)
                items.append(Item(source_id=f"{i:06d}", payload_tokens=tokens, probe_tokens=tokens, corpus_window=window))
            return items
        width = context.reserve.window_tokens if context.reserve is not None else 0
        if options.n_tokens > width - 3:
            raise InputError(None, "items.generate.n_tokens", f"expected at most {width - 3} tokens (seq_len - 2, with the EOS wrap), got {options.n_tokens}")
        items = []
        for i, (window, window_tokens) in enumerate(context.take_reserve_windows("watermark texts", options.n, rng)):
            tokens = window_tokens[: options.n_tokens]
            items.append(self._text_item(f"{i:06d}", context.tokenizer.decode(tokens), tokens, context.eos_id,
                                         {"reserve_offset": window * width}))
        return items

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        if self.params.target == "sequences":
            raise InputError(path, None, "expected items.generate for target: sequences (the items are the run's own windows)")
        key, items = self.params.key, []
        for line_no, record in enumerate(records, start=1):
            text = record.get(key)
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{path}:{line_no}", key, "expected a non-empty string (set params.key for another field)")
            items.append(self._text_item(str(record.get("id", f"{line_no - 1:06d}")), text, context.tokenizer.encode(text),
                                         context.eos_id, record_meta(record, (key, "id"))))
        return items

    @staticmethod
    def _text_item(source_id: str, text: str, tokens: list[int], eos_id: int, meta: dict) -> Item:
        # the probe reads exactly the span the watermark covers: EOS + text + EOS
        return Item(source_id=source_id, text=text, payload_tokens=list(tokens),
                    probe_tokens=[eos_id, *tokens, eos_id], meta=meta)

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        return [ProbeSpec("watermark", "watermark_gradient", {"tokens": "probe_tokens", "seed": "noise_seed"})]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        def outcome(name: str, estimator: str, description: str, primary: bool = False) -> OutcomeSpec:
            return OutcomeSpec(name=name, probe="watermark", column="wm_stat", type="continuous", expected_sign=-1,
                               primary=primary, estimator=estimator, description=description)

        return [
            outcome("mean_shift", "watermark_shift", "mean watermark statistic (N(0, 1) if never trained; negative if learned)", True),
            outcome("detected", "watermark_item_p", "items whose one-sided watermark p-value is below alpha"),
            outcome("tpr_at_1pct_fpr", "watermark_tpr", "watermark detection rate at a 1% false-positive rate"),
            outcome("calibration", "watermark_calibration", "control statistics against N(0, 1) (calibration)"),
        ]
