"""Memorization canaries, all the patterns (MemP): canary types × lengths × carriers × repetitions.

Random tokens carry no information the model could learn elsewhere, so the loss of an
inserted canary against never-inserted canaries of the same construction measures
memorization (Carlini et al. 2019, "The Secret Sharer"). Panda et al. (2025, "Privacy
auditing of large language models") show that how easily a canary is memorized depends on
what it is made of; one experiment here runs several constructions side by side, each a
stratum of the randomization, so every condition has its own treated and control canaries:

- **canary types** (``items.generate.types``):

  - ``none``: the carrier alone (a fresh excerpt of the corpus's reserve region per item),
    the baseline of a natural text;
  - ``rare``: tokens drawn from the ``params.rare_pool`` least frequent tokens of the corpus
    (counted on the reserve region, i.i.d. with the training data);
  - ``random``: tokens drawn uniformly from the vocabulary (special tokens excluded);
  - ``least_likely``: the tokens a trained model finds least likely, from an items file
    written at plan time by ``designkit canaries --from-checkpoint CKPT --out FILE``
    (``items.generate.least_likely: FILE``, relative to the design file; the engine side
    loads the weights, the planner only reads the file). The file may also be the
    experiment's whole ``items:``; its records are ``{"tokens": [...], "type"?, "carrier"?}``.

- **lengths** (``items.generate.lengths``, e.g. ``[1, 8, 32]`` tokens) and **carriers**
  (``items.generate.carriers``): a carrier is the text a canary follows, as Carlini et al.'s
  "my secret is …": ``""`` (none), any literal text, or ``"@corpus"`` (a fresh reserve excerpt
  of ``carrier_tokens`` per canary). With a carrier the extraction prompt is the carrier and
  the target the whole canary; without one, the canary's first ``prefix_tokens`` tokens are
  the prompt (so lengths must exceed it).
- **repetitions** are the arms' doses (e.g. ``x1``/``x4``/``x16`` against ``control``).

``items.generate.n`` canaries are made per condition (type × length × carrier); each item's
``stratum`` is ``TYPE/L<length>/<carrier>``, and ``stratify_by: stratum`` in the design
stratifies the randomization by it.

**Probes:** ``loss`` (``text_loss`` on carrier + canary: loss, Min-K%, zlib),
``loss_shuffled`` (the same tokens with the canary shuffled) and ``extract`` (``greedy``
from the prompt, compared with the target).

**Outcomes and estimators:** ``loss`` (primary; the design's continuous method),
``order_memorization`` (shuffled minus inserted order: memorized order beyond token
familiarity), ``min_k_logprob`` and ``zlib_ratio`` (membership scores),
``membership_auc`` (``auc``: AUC = U/(n1 n2) of members' against non-members' loss),
``membership_tpr`` (``tpr_at_fpr``: TPR at 1% FPR with a bootstrap CI), ``exposure``
(``exposure``: Carlini's exposure, fitted from the never-inserted canaries of each
stratum; meaningful for ``random`` canaries, whose space |R| = V^L the fit extrapolates),
``extracted`` / ``extracted_prefix`` (exact greedy extraction of the target from the prompt
and the tokens right before the first mistake), and with several conditions
``loss_by_stratum`` / ``extracted_by_stratum`` (``per_stratum``: effects per condition).
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designkit.errors import InputError, quote
from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec
from designkit.schema import bounded

MAX_GENERATED_TOKENS = 2**28
"""Canaries are drawn in memory as int64: n × length tokens must stay within 2 GiB."""
CORPUS_CARRIER = "@corpus"
"""A carrier entry meaning: a fresh excerpt of the corpus's reserve region per canary."""
GENERATED_TYPES = ("none", "rare", "random")
FILE_TYPES = ("none", "rare", "random", "least_likely")


@dataclass(frozen=True)
class CanaryParams:
    prefix_tokens: int = bounded(8, ge=1)
    """Tokens of a canary without carrier given as the prompt for greedy extraction; the rest is the reference."""
    min_k: float = bounded(0.2, gt=0, le=1)
    """Share of lowest-probability tokens averaged by the Min-K% membership score."""
    rare_pool: int = bounded(64, ge=1)
    """``rare`` canaries draw their tokens from this many least frequent tokens of the corpus."""


@dataclass(frozen=True)
class CanaryGenerate:
    n: int = bounded(ge=1)
    """Canaries per condition (canary type × length × carrier)."""
    length: int = bounded(32, ge=1)
    """Tokens per canary (when ``lengths`` is not given)."""
    lengths: list[int] | None = None
    """Several canary lengths, each a stratum (e.g. [1, 8, 32])."""
    types: list[Literal["none", "rare", "random"]] = field(default_factory=lambda: ["random"])
    """Canary types made from the seed (``least_likely`` comes from a file, see ``least_likely``)."""
    carriers: list[str] = field(default_factory=lambda: [""])
    """Texts each canary follows: "" (none), a literal text, or "@corpus" (a reserve excerpt per canary)."""
    carrier_tokens: int = bounded(32, ge=2)
    """Tokens of each "@corpus" carrier."""
    least_likely: str | None = None
    """Items file of least-likely canaries from ``designkit canaries --from-checkpoint`` (relative to the design)."""


class Canary(ExperimentKind):
    name = "canary"
    item_noun = ("canary", "canaries")
    Params = CanaryParams
    GenerateParams = CanaryGenerate

    @classmethod
    def check(cls, params: CanaryParams, options: CanaryGenerate | None) -> None:
        if options is None:
            return
        lengths = options.lengths if options.lengths is not None else [options.length]
        key = "items.generate.lengths" if options.lengths is not None else "items.generate.length"
        if not lengths or any(n < 1 for n in lengths) or len(set(lengths)) != len(lengths):
            raise InputError(None, key, f"expected distinct lengths of at least 1 token, got {quote(lengths)}")
        if not options.types and not options.least_likely:
            raise InputError(None, "items.generate.types", "expected at least one canary type")
        if len(set(options.types)) != len(options.types):
            raise InputError(None, "items.generate.types", f"expected distinct types, got {quote(options.types)}")
        if not options.carriers or len(set(options.carriers)) != len(options.carriers):
            raise InputError(None, "items.generate.carriers", f"expected distinct carriers, got {quote(options.carriers)}")
        if "" in options.carriers:
            short = min(lengths)
            if short <= params.prefix_tokens:
                raise InputError(None, key, f"expected more than params.prefix_tokens={params.prefix_tokens} tokens for canaries "
                                            f"without a carrier (the prompt of extraction), got {short}")
        if "none" in options.types and CORPUS_CARRIER not in options.carriers:
            raise InputError(None, "items.generate.carriers", f"expected {CORPUS_CARRIER!r} among the carriers for canary type "
                                                              "'none' (carrier-only items must differ from one another)")
        total = options.n * max(lengths) * (len(options.types) + 1) * len(lengths) * len(options.carriers)
        if total > MAX_GENERATED_TOKENS:
            key = "items.generate.n" if options.n >= max(lengths) else key
            raise InputError(
                None, key,
                f"expected n × length ≤ {MAX_GENERATED_TOKENS:,} tokens (canaries are drawn in memory), "
                f"got {options.n:,} × {max(lengths):,} per condition, {total:.3g} tokens, {total * 8 / 2**40:.3g} TiB",
            )

    # --- making items -------------------------------------------------------------------

    def generate(self, options: CanaryGenerate, rng: np.random.Generator, context: PlanContext) -> list[Item]:
        self.check(self.params, options)
        lengths = options.lengths if options.lengths is not None else [options.length]
        special = set(context.tokenizer.special_ids)
        vocabulary = np.array([t for t in range(context.tokenizer.vocab_size) if t not in special], dtype=np.int64)
        canaries: list[tuple[str, np.ndarray]] = []  # (type, (n, length) tokens) per condition, before carriers
        for kind in options.types:
            if kind == "none":
                canaries.append(("none", np.zeros((options.n, 0), dtype=np.int64)))
                continue
            pool = vocabulary if kind == "random" else self._rare_tokens(context, vocabulary)
            for length in lengths:
                canaries.append((kind, pool[rng.integers(len(pool), size=(options.n, length))]))
        if options.least_likely:
            canaries += self._least_likely(options, lengths, context)
        items: list[Item] = []
        for (kind, draws), carrier in itertools.product(canaries, options.carriers):
            if kind == "none" and carrier != CORPUS_CARRIER:
                continue  # the carrier alone: only fresh corpus excerpts make distinct items
            carriers = self._carriers(carrier, options, len(draws), rng, context)
            items += self._items(kind, draws, carrier, carriers, rng, context, start=len(items))
        return items

    def load(self, path: Path, records: Sequence[dict[str, Any]], context: PlanContext) -> list[Item]:
        """Records ``{"tokens": [int, ...], "type"?: str, "carrier"?: str}`` (``designkit canaries`` writes them)."""
        rng = np.random.default_rng(0)  # shuffles the order-memorization control only; the file fixes the rest
        items = []
        for line, record in enumerate(records, start=1):
            tokens, kind, carrier = self._record(record, f"{path}:{line}", context)
            carrier_tokens = [np.asarray(context.tokenizer.encode(carrier), dtype=np.int64)] if carrier else [np.empty(0, np.int64)]
            if not carrier and len(tokens) <= self.params.prefix_tokens:
                raise InputError(f"{path}:{line}", "tokens", f"expected more than params.prefix_tokens={self.params.prefix_tokens} "
                                                             f"tokens without a carrier, got {len(tokens)}")
            (item,) = self._items(kind, tokens[None, :], carrier, carrier_tokens, rng, context, start=line - 1)
            item.source_id = str(record.get("id", item.source_id))
            items.append(item)
        return items

    @staticmethod
    def _record(record: dict[str, Any], where: str, context: PlanContext) -> tuple[np.ndarray, str, str]:
        tokens = record.get("tokens")
        if "tokens" not in record:
            raise InputError(where, "tokens", f"expected a list of token ids ('tokens'), got the keys {quote(sorted(record))}")
        vocab = context.tokenizer.vocab_size
        if (not isinstance(tokens, list) or not tokens
                or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in tokens)):
            raise InputError(where, "tokens", f"expected a non-empty list of token ids in 0..{vocab - 1}, got {quote(tokens)}")
        kind = record.get("type", "least_likely")
        if kind not in FILE_TYPES or kind == "none":
            raise InputError(where, "type", f"expected one of {', '.join(t for t in FILE_TYPES if t != 'none')}, got {quote(kind)}")
        carrier = record.get("carrier", "")
        if not isinstance(carrier, str) or carrier == CORPUS_CARRIER:
            raise InputError(where, "carrier", f"expected a literal carrier text, got {quote(carrier)}")
        return np.asarray(tokens, dtype=np.int64), str(kind), carrier

    def _least_likely(self, options: CanaryGenerate, lengths: list[int], context: PlanContext) -> list[tuple[str, np.ndarray]]:
        """The first ``n`` canaries of each length in the least-likely file (lengths the design asks for)."""
        key = "items.generate.least_likely"
        base = getattr(context, "base_dir", None) or Path.cwd()
        path = (Path(base) / options.least_likely).resolve()
        if not path.is_file():
            raise InputError(None, key, f"expected an items file from 'designkit canaries', got {quote(options.least_likely)} (resolved to {path})")
        records = []
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text.strip():
                try:
                    records.append((line, json.loads(text)))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{line}", None, f"expected a JSON object per line ({exc.msg})") from None
        if not records:
            raise InputError(path, None, "expected at least one canary")
        by_length: dict[int, list[np.ndarray]] = {}
        for line, record in records:
            if not isinstance(record, dict):
                raise InputError(f"{path}:{line}", None, f"expected a JSON object, got {quote(record)}")
            tokens, _, _ = self._record(record, f"{path}:{line}", context)
            by_length.setdefault(len(tokens), []).append(tokens)
        out = []
        for length in lengths:
            found = by_length.get(length, [])
            if len(found) < options.n:
                raise InputError(path, "tokens", f"expected at least {options.n} canaries of {length} tokens (items.generate.n), found {len(found)}")
            out.append(("least_likely", np.stack(found[: options.n])))
        return out

    def _rare_tokens(self, context: PlanContext, vocabulary: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.asarray(context.reserve_tokens, dtype=np.int64), minlength=context.tokenizer.vocab_size)
        order = np.lexsort((vocabulary, counts[vocabulary]))  # fewest occurrences first, ties by id
        return vocabulary[order[: self.params.rare_pool]]

    @staticmethod
    def _carriers(carrier: str, options: CanaryGenerate, n: int, rng: np.random.Generator, context: PlanContext) -> list[np.ndarray]:
        if carrier == CORPUS_CARRIER:
            width = context.reserve.window_tokens if context.reserve is not None else 0
            if options.carrier_tokens > width:
                raise InputError(None, "items.generate.carrier_tokens", f"expected at most a window's {width} tokens (seq_len + 1), got {options.carrier_tokens}")
            windows = context.take_reserve_windows("canary carriers", n, rng)
            return [np.asarray(tokens[: options.carrier_tokens], dtype=np.int64) for _, tokens in windows]
        tokens = np.asarray(context.tokenizer.encode(carrier), dtype=np.int64) if carrier else np.empty(0, np.int64)
        return [tokens] * n

    def _items(self, kind: str, draws: np.ndarray, carrier: str, carriers: Sequence[np.ndarray], rng: np.random.Generator,
               context: PlanContext, start: int) -> list[Item]:
        length = draws.shape[1]
        # a literal carrier is named by a stable short hash (its text may be long)
        label = "none" if not carrier else "corpus" if carrier == CORPUS_CARRIER else f"carrier-{zlib.crc32(carrier.encode()):08x}"
        stratum = f"{kind}/L{length}/{label}" if kind != "none" else f"none/L0/{label}"
        meta = {"canary_type": kind, "length": length, "carrier": label}
        shuffled = rng.permuted(draws, axis=1) if length else draws
        payloads = [np.concatenate([c, d]).astype(np.int32) for c, d in zip(carriers, draws)]
        texts = context.tokenizer.decode_batch(payloads)
        k = self.params.prefix_tokens
        items = []
        for i, (payload, carrier_tokens, text) in enumerate(zip(payloads, carriers, texts)):
            c = len(carrier_tokens)
            if kind == "none":  # a natural text: its second half from its first
                cut = max(1, c // 2)
            elif c:
                cut = c  # "my secret is …": the carrier prompts the whole canary
            else:
                cut = k
            alt = np.concatenate([carrier_tokens, shuffled[i]]).astype(np.int32) if length else rng.permuted(payload)
            items.append(Item(
                source_id=f"{start + i:06d}", text=text, payload_tokens=payload, probe_tokens=payload,
                alt_probe_tokens=alt, prompt_tokens=payload[:cut], target_tokens=payload[cut:],
                stratum=stratum, meta=meta,
            ))
        return items

    # --- scoring ----------------------------------------------------------------------

    def probes(self, items: Sequence[Item]) -> list[ProbeSpec]:
        longest = max(len(item.target_tokens) if item.target_tokens is not None else 0 for item in items)
        return [
            ProbeSpec("loss", "text_loss", {"tokens": "probe_tokens", "min_k": self.params.min_k}),
            ProbeSpec("loss_shuffled", "text_loss", {"tokens": "alt_probe_tokens", "min_k": self.params.min_k}),
            ProbeSpec("extract", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens", "max_new_tokens": longest}),
        ]

    def outcomes(self, items: Sequence[Item]) -> list[OutcomeSpec]:
        outcomes = [
            OutcomeSpec(name="loss", probe="loss", column="loss", type="continuous", expected_sign=-1, primary=True,
                        description="mean per-token loss of the canary (nats)"),
            OutcomeSpec(name="order_memorization", probe="loss_shuffled", column="loss", type="continuous", expected_sign=+1, minus_probe="loss",
                        description="loss of the canary's tokens shuffled minus in their inserted order: memorized order beyond token familiarity"),
            OutcomeSpec(name="min_k_logprob", probe="loss", column="min_k_logprob", type="continuous", expected_sign=+1,
                        description="Min-K% log-prob membership score"),
            OutcomeSpec(name="zlib_ratio", probe="loss", column="zlib_ratio", type="continuous", expected_sign=-1,
                        description="loss relative to zlib entropy (Carlini et al. 2021)"),
            OutcomeSpec(name="membership_auc", probe="loss", column="loss", type="continuous", expected_sign=-1, estimator="auc",
                        description="AUC of the loss as a membership score, inserted against never-inserted canaries (0.5: chance)"),
            OutcomeSpec(name="membership_tpr", probe="loss", column="loss", type="continuous", expected_sign=-1, estimator="tpr_at_fpr",
                        description="share of inserted canaries detected by their loss at a 1% false-positive rate"),
            OutcomeSpec(name="exposure", probe="loss", column="loss", type="continuous", expected_sign=-1, estimator="exposure",
                        description="Carlini's exposure (bits) fitted from the never-inserted canaries of each stratum, minus the control's"),
            OutcomeSpec(name="extracted", probe="extract", column="exact_match", type="binary", expected_sign=+1, baseline=0.0,
                        description="greedy decoding from the prompt reproduces the canary exactly"),
            OutcomeSpec(name="extracted_prefix", probe="extract", column="prefix_match", type="continuous", expected_sign=+1,
                        description="tokens of the target reproduced before the first mistake"),
        ]
        if len({item.stratum for item in items}) > 1:
            outcomes += [
                OutcomeSpec(name="loss_by_stratum", probe="loss", column="loss", type="continuous", expected_sign=-1, estimator="per_stratum",
                            description="loss effect within each condition (type/length/carrier)"),
                OutcomeSpec(name="extracted_by_stratum", probe="extract", column="exact_match", type="binary", expected_sign=+1,
                            estimator="per_stratum", description="extraction effect within each condition"),
            ]
        return outcomes

