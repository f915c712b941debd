"""Design → plan: items, randomization, tokens, budget, placement, leakage, power, files.

``make_plan`` is a plain chain of steps; each step lives in its own module. Every random
draw comes from a generator derived from the design seed and a fixed label, so the same
design and seed give a byte-identical plan directory, and adding an experiment does not
reshuffle the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import designkit
from designkit import artefacts, atomic_files, file_hashes, model_config, plan_types, schema
from designkit.data.corpus import TokenCorpus, builtin_corpus
from designkit.data.sources import iter_jsonl_records, read_parquet_records
from designkit.data.tokenizer import TextTokenizer
from designkit.design import Design, ExperimentSpec, design_to_dict, design_warnings, load_design
from designkit.errors import InputError, quote
from designkit.controllers import ControllerSpec
from designkit.kinds import KINDS, Item, Payload, PlanContext, ProbeInstance
from designkit.planning import budget, leakage, placement, power, randomize, slots, span_finder, spillover
from designkit.planning.permutation import BaseOrder
from designkit.planning.planfile import INSTANCES_SCHEMA, ITEMS_SCHEMA, PROBE_ROW_COLUMNS, plain_scalar, write_plan
from designkit.planning.reserve import ReserveAllocator
from designkit.planning.reserve import empty_reserved as reserve_empty
from designkit.probes import check_probe_specs

EOS_WRAP = 2  # an insertion is EOS + payload + EOS
# one encoder for every item: json.dumps with options builds a new one per call (slow at 1M items)
_META_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def derive_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator for one purpose: independent of every other label, stable across versions."""
    words = [int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little") for label in labels]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


@dataclass
class ExperimentItems:
    spec: ExperimentSpec
    kind: Any
    items: list[Item]
    arms: list[str]  # arm of each item
    rounding: pd.DataFrame | None = None


def resolve_corpus(design: Design, show_progress: bool) -> TokenCorpus:
    run = design.run
    if run.corpus.startswith("builtin:"):
        tokenizer_dir = Path(run.tokenizer.path) if run.tokenizer.path else None
        if run.model.checkpoint is not None:
            tokenizer_dir = Path(run.model.checkpoint)  # continual pretraining keeps the model's tokenizer
        train_vocab = None if tokenizer_dir else run.tokenizer.train_vocab
        return builtin_corpus(run.corpus, train_vocab=train_vocab, tokenizer_dir=tokenizer_dir, show_progress=show_progress)
    corpus = TokenCorpus.open(run.corpus)
    if run.model.checkpoint is not None:
        theirs = Path(run.model.checkpoint) / "tokenizer.json"
        if theirs.is_file() and theirs.read_bytes() != (corpus.path / "tokenizer.json").read_bytes():
            raise InputError(None, "run.corpus", "expected a corpus tokenized with the checkpoint's tokenizer (re-run prepare-corpus --tokenizer CHECKPOINT)")
    return corpus


def reserve_split(corpus: TokenCorpus, fraction: float) -> int:
    """First token of the reserve region: a document boundary near ``(1 - fraction) × n_tokens``."""
    if fraction == 0:
        return corpus.n_tokens
    target = int(round((1.0 - fraction) * corpus.n_tokens))
    starts = np.asarray(corpus.documents)
    boundary = int(starts[min(np.searchsorted(starts, target), len(starts) - 1)])
    return boundary if 0 < boundary < corpus.n_tokens else target


def _read_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        records = read_parquet_records(path)
    else:
        records = [record for _, record in iter_jsonl_records(path)]
    if not records:
        raise InputError(path, None, "expected at least one item")
    return records


def _with_explicit_positions(items: list[Item], records: list[dict[str, Any]], path: Path) -> list[Item]:
    """Copy a ``positions`` field of the items file (global sequence indices) onto its items."""
    if not any("positions" in record for record in records):
        return items
    if len(items) != len(records):
        raise InputError(path, "positions", f"expected one item per record when records give positions, kind made {len(items)} from {len(records)}")
    for line, (item, record) in enumerate(zip(items, records), start=1):
        positions = record.get("positions")
        if positions is None:
            continue
        if not isinstance(positions, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in positions):
            raise InputError(f"{path}:{line}", "positions", f"expected a list of global sequence indices, got {quote(positions)}")
        item.positions = positions
        item.meta.pop("positions", None)
    return items


def build_experiment_items(design: Design, index: int, context: PlanContext, design_file: Path) -> ExperimentItems:
    spec = design.experiments[index]
    at = f"experiments[{index}]"
    kind_class = KINDS.get(spec.kind, file=design_file, field=f"{at}.kind")
    kind = kind_class(schema.from_dict(kind_class.Params, spec.params, design_file, f"{at}.params"))
    if kind.edit not in plan_types.EDIT_KINDS:
        raise InputError(design_file, f"{at}.kind", f"expected a kind whose edit is one of {', '.join(plan_types.EDIT_KINDS)}, {spec.kind!r} declares {kind.edit!r}")
    context.experiment = spec.name
    context.base_dir = design_file.parent
    context.global_batch, context.steps = design.run.global_batch, design.run.steps
    context.arms = {name: (arm.dose, tuple(arm.window or spec.window)) for name, arm in spec.arms.items()}
    try:
        if spec.items.generate is not None:
            options = schema.from_dict(kind.GenerateParams, spec.items.generate, design_file, f"{at}.items.generate")
            items = kind.generate(options, derive_rng(design.seed, spec.name, "items"), context)
        else:
            path = Path(spec.items.path)
            records = _read_records(path)
            items = _with_explicit_positions(kind.load(path, records, context), records, path)
    except InputError as exc:
        if exc.file is None:  # a kind's error without a file belongs to this experiment of the design
            raise InputError(design_file, f"{at}.{exc.field}" if exc.field else at, exc.detail) from None
        raise
    ids = [item.source_id for item in items]
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise InputError(spec.items.path or design_file, "id", f"expected unique item ids, {quote(dup)} repeats")
    if len(items) < len(spec.arms):
        raise InputError(design_file, f"{at}.items", f"expected at least one item per arm ({len(spec.arms)}), got {len(items)}")
    strata = None
    if spec.stratify_by:
        # ``stratum`` is the kind's own stratum (canary type/length/carrier, a text's document, …);
        # any other name is a field of the items, so a kind's stratum never hides a missing field
        if spec.stratify_by == "stratum":
            values = [item.stratum for item in items]
        else:
            values = [item.meta.get(spec.stratify_by) for item in items]
        missing = [item.source_id for item, v in zip(items, values) if v is None]
        if missing:
            raise InputError(design_file, f"{at}.stratify_by", f"expected field {quote(spec.stratify_by)} on every item, item {quote(missing[0])} lacks it")
        strata = np.array([str(v) for v in values], dtype=object)
        for item, value in zip(items, strata):
            item.stratum = value
    arm_names = list(spec.arms)
    assignment = randomize.assign_arms(
        len(items), arm_names, [spec.arms[a].share for a in arm_names], derive_rng(design.seed, spec.name, "assign"), strata
    )
    arms = [arm_names[a] for a in assignment.arm_of_item]
    try:
        items = kind.after_assignment(items, arms, derive_rng(design.seed, spec.name, "probes"))
    except InputError as exc:
        raise InputError(design_file, f"{at}.{exc.field}" if exc.field else at, exc.detail) from None
    _check_edits(kind, spec, items, design_file, at)
    return ExperimentItems(spec=spec, kind=kind, items=items, arms=arms, rounding=assignment.rounding.assign(experiment=spec.name))


def _check_edits(kind, spec: ExperimentSpec, items: list[Item], design_file: Path, at: str) -> None:
    """A kind's edit declaration is usable: window items for whole-sequence kinds, a noise std for noise."""
    # remove items that are their own reserve window and name their sequences (FC batches)
    replacing = [item for item in items if item.replacement_window is not None and not _item_windows(item)]
    if replacing and (kind.edit != "remove" or len(replacing) != len(items)):
        raise InputError(design_file, f"{at}.kind", f"expected kind {spec.kind!r} to give every item corpus windows, or every item a replacement_window (edit remove)")
    if kind.edit != "insert" and not replacing:
        lacking = next((item.source_id for item in items if not _item_windows(item)), None)
        if lacking is not None:
            raise InputError(design_file, f"{at}.kind", f"expected kind {spec.kind!r} (edit {kind.edit}) to give every item a corpus_window or corpus_windows, item {lacking!r} has none")
        if any(item.positions is not None for item in items):
            raise InputError(design_file, f"{at}.items", f"expected no positions for kind {spec.kind!r}: its {kind.edit} edits go wherever the run reads each item's window")
    for arm, arm_spec in spec.arms.items():
        std = float(kind.noise_std(arm))
        if not (std >= 0.0 and np.isfinite(std)):
            raise InputError(design_file, f"{at}.params", f"expected a finite noise std >= 0 for arm {arm}, got {std}")
        if kind.edit == "noise" and arm_spec.dose > 0 and std == 0.0:
            raise InputError(design_file, f"{at}.params", f"expected a positive noise std for treated arm {arm} of noise kind {spec.kind!r}")


def _item_windows(item: Item) -> list[int]:
    """The distinct training-region windows a whole-sequence item occupies (none for insert items)."""
    if item.corpus_windows is not None:
        return sorted({int(w) for w in item.corpus_windows})
    return [] if item.corpus_window is None else [int(item.corpus_window)]


def _tokens(tokenizer: TextTokenizer, given: list[int] | np.ndarray | None, text: str | None) -> list[int] | np.ndarray | None:
    if given is not None:
        # numpy rows (e.g. the canary's) stay arrays: Arrow writes them as list<int32> like lists
        return given if isinstance(given, list | np.ndarray) else [int(t) for t in given]
    if text is None:
        return None
    return tokenizer.encode(text)


ITEM_COLUMNS = (
    *(name for name in ITEMS_SCHEMA.names if name not in ("item_index", "noise_seed")),
    # internal columns (not written): what the placement needs
    "positions", "edit", "corpus_windows", "watermarked", "footprint", "controlled", "replacement_window",
    "dose_counts", "insertions", "injected_tokens",
)
INSTANCE_COLUMNS = tuple(name for name in INSTANCES_SCHEMA.names if name != "instance")


@dataclass
class PlanItems:
    """The planner's tables of every item: items, their payloads and their probe instances."""

    items: pd.DataFrame
    payloads: pd.DataFrame
    """``payloads.parquet`` plus the internal ``footprint`` (tokens an insertion covers)."""
    payload_tokens: list[list[int] | np.ndarray]
    instances: pd.DataFrame


def payload_doses(arm_dose: int, n_payloads: int, dose_counts: str) -> list[int]:
    """Planned repetitions of each of an item's payloads: the arm's dose each (``payload``), or
    the dose split cyclically over them (``item``: payload ``j`` gets insertions ``j, j + n, …``)."""
    if dose_counts == "item":
        return [arm_dose // n_payloads + (1 if j < arm_dose % n_payloads else 0) for j in range(n_payloads)]
    return [arm_dose] * n_payloads


def items_frame(experiments: list[ExperimentItems], tokenizer: TextTokenizer) -> PlanItems:
    """One row per item, payload and probe instance, built column by column (200k rows as dicts
    would cost ~1 KB each)."""
    columns: dict[str, list] = {name: [] for name in ITEM_COLUMNS}
    instance_columns: dict[str, list] = {name: [] for name in INSTANCE_COLUMNS}
    payload_columns: dict[str, list] = {name: [] for name in ("item_index", "ordinal", "dose", "n_tokens", "footprint")}
    payloads: list[list[int] | np.ndarray] = []
    meta_json: dict[int, str] = {}
    first_item = 0
    for exp in experiments:
        spec, items, edit = exp.spec, exp.items, exp.kind.edit
        dose_counts = getattr(exp.kind, "dose_counts", "payload")
        item_payloads = [item.all_payloads() for item in items]
        texts = [p.text for ps in item_payloads for p in ps if p.tokens is None]
        if any(t is None for t in texts):
            bad = next(item for item, ps in zip(items, item_payloads) if any(p.tokens is None and p.text is None for p in ps))
            raise InputError(None, "items", f"expected a text or tokens for every payload of kind {spec.kind!r}, item {bad.source_id!r} has a payload with neither")
        encoded = iter(tokenizer.encode_batch(texts))
        payload = [
            [next(encoded) if p.tokens is None else p.tokens if isinstance(p.tokens, np.ndarray) else [int(t) for t in p.tokens] for p in ps]
            for ps in item_payloads
        ]
        arms = [spec.arms[arm] for arm in exp.arms]
        windows = [arm.window or spec.window for arm in arms]
        stds = {arm: float(exp.kind.noise_std(arm)) for arm in spec.arms}
        for item in items:  # items of a kind often share one meta dict: encode it once
            if id(item.meta) not in meta_json:
                meta_json[id(item.meta)] = _META_ENCODER.encode(item.meta)
        n_payloads = [len(ps) for ps in payload]
        for i, (item, ps, arm) in enumerate(zip(items, payload, arms)):
            if not ps:
                raise InputError(None, "items", f"expected at least one payload per item, item {item.source_id!r} has none")
            doses = payload_doses(arm.dose, len(ps), dose_counts)
            payloads.extend(ps)
            payload_columns["item_index"].extend([first_item + i] * len(ps))
            payload_columns["ordinal"].extend(range(len(ps)))
            payload_columns["dose"].extend(doses)
            payload_columns["n_tokens"].extend(len(p) for p in ps)
            payload_columns["footprint"].extend(len(p) + EOS_WRAP if edit == "insert" else 0 for p in ps)
        instances = [item.all_probe_instances() for item in items]
        flat = [(first_item + i, inst) for i, insts in enumerate(instances) for inst in insts]
        for _, inst in flat:
            if isinstance(inst, ProbeInstance) and id(inst.meta) not in meta_json:
                meta_json[id(inst.meta)] = _META_ENCODER.encode(inst.meta)
        instance_add = {
            "item_index": [i for i, _ in flat],
            "prompt": [inst.prompt for _, inst in flat],
            "target": [inst.target for _, inst in flat],
            "alt_prompt": [inst.alt_prompt for _, inst in flat],
            "choices": [inst.choices for _, inst in flat],
            "gold": [inst.gold for _, inst in flat],
            "probe_text": [inst.probe_text for _, inst in flat],
            "prompt_tokens": [_tokens(tokenizer, inst.prompt_tokens, inst.prompt) for _, inst in flat],
            "target_tokens": [_tokens(tokenizer, inst.target_tokens, inst.target) for _, inst in flat],
            "alt_prompt_tokens": [_tokens(tokenizer, None, inst.alt_prompt) for _, inst in flat],
            "probe_tokens": [_tokens(tokenizer, inst.probe_tokens, inst.probe_text) for _, inst in flat],
            "alt_probe_tokens": [_tokens(tokenizer, inst.alt_probe_tokens, None) for _, inst in flat],
            "choices_tokens": [[tokenizer.encode(c) for c in inst.choices] if inst.choices else None for _, inst in flat],
            # the item shorthand (the item is its own instance) keeps its meta on the item only
            "instance_meta": [meta_json[id(inst.meta)] if isinstance(inst, ProbeInstance) else "{}" for _, inst in flat],
        }
        for name, values in instance_add.items():
            instance_columns[name].extend(values)
        footprints = [[len(p) + EOS_WRAP if edit == "insert" else 0 for p in ps] for ps in payload]
        insertions = [
            sum(payload_doses(arm.dose, len(ps), dose_counts)) if arm.dose > 0 and not spec.placebo and edit == "insert" else 0
            for ps, arm in zip(payload, arms)
        ]
        add = {
            "item_id": [f"{spec.name}/{item.source_id}" for item in items],
            "experiment": [spec.name] * len(items),
            "kind": [spec.kind] * len(items),
            "arm": list(exp.arms),
            "dose": [arm.dose for arm in arms],
            "inserted": [arm.dose > 0 and not spec.placebo for arm in arms],
            "stratum": [item.stratum for item in items],
            "window_start": [float(w[0]) for w in windows],
            "window_end": [float(w[1]) for w in windows],
            "text": [item.text if item.text is not None else _payload_text(tokenizer, item_ps, ps) for item, item_ps, ps in zip(items, item_payloads, payload)],
            "n_payloads": n_payloads,
            "n_instances": [len(insts) for insts in instances],
            "meta": [meta_json[id(item.meta)] for item in items],
            "positions": [item.positions for item in items],
            "edit": [edit] * len(items),
            "corpus_windows": [_item_windows(item) for item in items],
            # the std an item is trained with: none for control arms and placebo experiments
            "noise_std": [stds[a] if arm.dose > 0 and not spec.placebo else 0.0 for a, arm in zip(exp.arms, arms)],
            "watermarked": [any(std > 0 for std in stds.values())] * len(items),
            "footprint": [max(f) for f in footprints],
            "dose_counts": [dose_counts] * len(items),
            "insertions": insertions,
            "injected_tokens": [
                _injected(f, arm.dose, dose_counts) if n else 0 for f, arm, n in zip(footprints, arms, insertions)
            ],
            "controlled": [exp.kind.controller(items) is not None] * len(items),
            "replacement_window": [-1 if item.replacement_window is None else int(item.replacement_window) for item in items],
        }
        for name, values in add.items():
            columns[name].extend(values)
        first_item += len(items)
    frame = pd.DataFrame({name: values for name, values in columns.items()})
    frame.insert(0, "item_index", np.arange(len(frame), dtype=np.int32))
    for name in ("n_payloads", "n_instances"):
        frame[name] = frame[name].astype(np.int32)
    payload_frame = pd.DataFrame({name: np.asarray(values, dtype=np.int32) for name, values in payload_columns.items()})
    payload_frame.insert(0, "payload_index", np.arange(len(payload_frame), dtype=np.int32))
    instance_frame = pd.DataFrame({name: _column(values) if name.endswith("_tokens") else values for name, values in instance_columns.items()})
    instance_frame["item_index"] = instance_frame["item_index"].astype(np.int32)
    instance_frame.insert(1, "instance", _ordinals(instance_frame["item_index"].to_numpy()))
    instance_frame["gold"] = instance_frame["gold"].astype("Int32")
    return PlanItems(items=frame, payloads=payload_frame, payload_tokens=payloads, instances=instance_frame)


def _payload_text(tokenizer: TextTokenizer, given: list[Payload], tokens: list) -> str:
    """An item's label in items.parquet: its first payload's text (decoded when given as tokens)."""
    return given[0].text if given[0].tokens is None else tokenizer.decode(tokens[0])


def _injected(footprints: list[int], dose: int, dose_counts: str) -> int:
    return sum(f * d for f, d in zip(footprints, payload_doses(dose, len(footprints), dose_counts)))


def _ordinals(owner: np.ndarray) -> np.ndarray:
    """0-based rank of each row among the rows of its owner (rows of one owner are contiguous)."""
    if len(owner) == 0:
        return np.zeros(0, dtype=np.int32)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    return (np.arange(len(owner)) - np.repeat(starts, np.diff(np.r_[starts, len(owner)]))).astype(np.int32)


def _column(values: list) -> np.ndarray | list:
    """Lists of arrays stay object columns (pandas would otherwise try to stack them)."""
    if not any(isinstance(value, np.ndarray) for value in values):
        return values
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


def checkpoint_steps(training, steps: int) -> list[int]:
    if isinstance(training.checkpoints, int):
        chosen = {int(round(steps * j / training.checkpoints)) for j in range(1, training.checkpoints + 1)}
    else:
        chosen = set(training.checkpoints)
    chosen.add(steps)
    if training.save_initial:
        chosen.add(0)
    return sorted(s for s in chosen if s >= 0)


def resolve_training(design: Design) -> plan_types.TrainingSettings:
    t = design.run.training
    return plan_types.TrainingSettings(
        seed=design.seed,
        learning_rate=t.learning_rate,
        min_lr=t.min_lr if t.min_lr is not None else t.learning_rate / 10,
        warmup_steps=t.warmup_steps if t.warmup_steps is not None else max(1, round(0.02 * design.run.steps)),
        weight_decay=t.weight_decay,
        betas=(t.beta1, t.beta2),
        eps=t.eps,
        grad_clip=t.grad_clip,
        micro_batch_size=t.micro_batch_size,
        precision=t.precision,
        compile=t.compile,
        checkpoint_steps=tuple(checkpoint_steps(t, design.run.steps)),
        log_every=t.log_every,
    )


def _experiment_spec(exp: ExperimentItems, design_file: Path, index: int) -> plan_types.ExperimentSpec:
    """The experiment as the plan fixes it: arm sizes, control arm, probes and outcomes."""
    spec = exp.spec
    outcomes = exp.kind.outcomes(exp.items)
    primaries = [o.name for o in outcomes if o.primary]
    if len(primaries) != 1:
        raise InputError(design_file, f"experiments[{index}]", f"expected exactly one primary outcome, kind gave {primaries}")
    counts = pd.Series(exp.arms).value_counts()
    return plan_types.ExperimentSpec(
        name=spec.name,
        kind=spec.kind,
        placebo=spec.placebo,
        control_arm=next((a for a, s in spec.arms.items() if s.dose == 0), None),
        stratify_by=spec.stratify_by,
        window=tuple(spec.window),
        arms=tuple(
            plan_types.ArmSpec(
                name=arm,
                dose=s.dose,
                share=s.share,
                n_items=int(counts.get(arm, 0)),
                inserted=s.dose > 0 and not spec.placebo,
                window=tuple(s.window or spec.window),
            )
            for arm, s in spec.arms.items()
        ),
        params=schema.to_dict(exp.kind.params),
        probes=tuple(exp.kind.probes(exp.items)),
        outcomes=tuple(outcomes),
        inloop_every=exp.kind.inloop_every(),
        inloop_steps=tuple(sorted({int(step) for step in exp.kind.inloop_steps()})),
        controller=controller.to_json() if (controller := exp.kind.controller(exp.items)) is not None and not spec.placebo else None,
    )


def _power_rows(experiments: list[dict[str, Any]], alpha: float, power_level: float) -> list[dict]:
    rows = []
    for exp in experiments:
        control = exp["control_arm"]
        if control is None:
            continue
        primary = next(o for o in exp["outcomes"] if o["primary"])
        for arm, info in exp["arms"].items():
            if arm == control:
                continue
            rows.append(
                {
                    "experiment": exp["name"],
                    "arm": arm,
                    "outcome": primary["name"],
                    "outcome_type": primary["type"],
                    "n_treated": info["n_items"],
                    "n_control": exp["arms"][control]["n_items"],
                    "baseline": primary["baseline"],
                }
            )
    return power.power_table(rows, alpha, power_level)


@dataclass
class PlanResult:
    path: Path
    plan_hash: str
    meta: dict[str, Any]


EPOCHS_WARNING = 4.0
"""Warn when the run reads its corpus's training region more often than this: up to about four
epochs repeated tokens are worth nearly as much as fresh ones (Muennighoff et al. 2023,
"Scaling data-constrained language models"), beyond that the run is no longer the
pretraining run the design describes, and a corpus far too small for the run (a
paper-scale design planned on the built-in corpus) is usually a mistake."""


def corpus_epochs(n_sequences: int, train_tokens: int, window_tokens: int) -> float:
    """How many times the run reads the corpus's training region (its windows of seq_len + 1 tokens)."""
    return n_sequences / max(1, train_tokens // window_tokens)


def epochs_warning(design_file: Path, epochs: float, total_tokens: int, train_tokens: int) -> str:
    return (f"{design_file}: run.corpus: the run's {total_tokens:,} tokens would read the corpus's "
            f"{train_tokens:,} training tokens about {epochs:,.{1 if epochs < 100 else 0}f} times (beyond {EPOCHS_WARNING:g} epochs repeated "
            "text stops standing in for fresh text): give a larger corpus (--corpus DIR) or fewer steps")


def make_plan(design_path: str | Path, out: str | Path, *, force: bool = False, show_progress: bool = True,
              corpus: str | Path | None = None) -> PlanResult:
    """``corpus`` replaces the design's ``run.corpus`` (``designkit plan --corpus``)."""
    design_file = Path(design_path)
    design = load_design(design_file, corpus=corpus)
    out = Path(out)
    atomic_files.check_output_dir(out)
    artefacts.check_output(out, "plan", force=force, option="--out")
    for message in design_warnings(design, design_file):
        print(f"designkit: warning: {message}", file=sys.stderr)
    return plan_design(design, design_file, out, show_progress=show_progress)


def plan_design(design: Design, design_file: Path, out: Path, *, show_progress: bool = False) -> PlanResult:
    run = design.run
    corpus = resolve_corpus(design, show_progress)
    tokenizer = corpus.tokenizer()
    train_tokens = reserve_split(corpus, run.reserve_fraction)
    window_tokens = run.seq_len + 1
    if train_tokens < window_tokens:
        raise InputError(design_file, "run.seq_len", f"expected the corpus's training region ({train_tokens:,} tokens) to hold at least one window of seq_len + 1 tokens")
    model = model_config.resolve(run.model, tokenizer.vocab_size, design_file)
    if model["padded_vocab_size"] < tokenizer.vocab_size:
        raise InputError(design_file, "run.model", f"expected a vocabulary of at least the tokenizer's {tokenizer.vocab_size} ids, got {model['padded_vocab_size']}")
    n_sequences = run.steps * run.global_batch
    total_tokens = n_sequences * run.seq_len
    epochs = corpus_epochs(n_sequences, train_tokens, window_tokens)
    if epochs > EPOCHS_WARNING:
        print(f"designkit: warning: {epochs_warning(design_file, epochs, total_tokens, train_tokens)}", file=sys.stderr)
    base_order = BaseOrder(train_tokens // window_tokens, design.seed)
    run_windows = RunWindows(
        corpus.tokens, base_order, window_tokens, min(n_sequences, base_order.n_windows), n_sequences=n_sequences, train_tokens=train_tokens
    )
    reserve = ReserveAllocator((corpus.n_tokens - train_tokens) // window_tokens, window_tokens)
    context = PlanContext(tokenizer, np.asarray(corpus.tokens[train_tokens:]), corpus.eos_id, run_windows=run_windows, reserve=reserve)

    experiments = [build_experiment_items(design, i, context, design_file) for i in range(len(design.experiments))]
    try:
        tables = items_frame(experiments, tokenizer)
    except InputError as exc:
        raise InputError(design_file, exc.field, exc.detail) from None
    items, payload_frame, payloads = tables.items, tables.payloads, tables.payload_tokens
    too_long = items[items["footprint"] > run.seq_len]
    if len(too_long):
        row = too_long.iloc[0]
        raise InputError(design_file, "run.seq_len", f"expected every payload to fit a sequence with its EOS wrappers; {row.item_id} needs {row.footprint} tokens")

    specs = [_experiment_spec(exp, design_file, i) for i, exp in enumerate(experiments)]
    # probe types and their options are checked at plan time, not when a checkpoint is first scored
    check_probe_specs(specs, PROBE_ROW_COLUMNS, file=design_file)
    # past here the item objects are not needed: 200k of them would hold ~0.3 GB while 10M placements are made
    experiments = [dataclasses.replace(exp, items=[]) for exp in experiments]

    items["noise_seed"] = _noise_seeds(items, design.seed)
    whole, blocked = _place_whole_sequences(items, design, n_sequences, base_order, reserve)
    items["edited_sequences"] = np.bincount(whole["item_index"], minlength=len(items)) if len(items) else 0
    slot_rows, blocked = _reserve_controller_slots(specs, items, design, blocked)
    budget_rows = budget.budget_table(items, total_tokens, n_sequences, slots=slot_rows)
    budget_info = budget.check_budget(budget_rows, total_tokens, run.max_injected_fraction, design_file, n_sequences)
    budget_info["rows"] = budget_rows.to_dict("records")

    # the leakage scan runs before placement: its n-gram table and the 10M placements are never in memory together
    payload_index = np.r_[0, np.cumsum([len(p) for p in payloads])].astype(np.int64)
    dtype = np.dtype(corpus.meta["dtype"])
    payload_tokens = np.concatenate([np.asarray(p, dtype=np.int64) for p in payloads]).astype(dtype) if payloads else np.zeros(0, dtype)
    del payloads
    tables.payload_tokens = []  # the flat array holds them now

    from tqdm.auto import tqdm

    scan_total = min(train_tokens, design.leakage.max_corpus_tokens or train_tokens) if design.leakage.scan_corpus else 0
    with tqdm(total=scan_total, desc="leakage scan", unit="tok", unit_scale=True, disable=not show_progress, file=sys.stderr) as bar:
        leak = leakage.leakage_report(
            *_inserted_texts(items, payload_frame, payload_tokens, payload_index),
            corpus.tokens[:train_tokens] if design.leakage.scan_corpus else None,  # memmap: scanned in chunks
            design.leakage.ngram,
            design.leakage.max_corpus_tokens,
            progress=bar.update,
        )
    leak["on_overlap"] = design.leakage.on_overlap
    if design.leakage.on_overlap == "error" and (leak["items_in_corpus"] or leak["cross_experiment_pairs"]):
        example = (leak["examples_in_corpus"] or [" and ".join(leak["examples_cross_experiment"][0])])[0]
        raise InputError(
            design_file,
            "leakage",
            f"expected no {design.leakage.ngram}-gram overlap, found {leak['items_in_corpus']} items in the corpus and "
            f"{leak['cross_experiment_pairs']} cross-experiment pairs (e.g. {example})",
        )

    held_out = [exp.spec.name for exp in experiments if getattr(exp.kind, "probes_held_out", False)]
    spill = spillover.spillover_report(items, payload_frame, payload_tokens, payload_index, tables.instances, design.leakage.ngram, held_out)
    spilled = spillover.found(spill)
    if design.leakage.on_overlap == "error" and spilled:
        raise InputError(design_file, "leakage", f"expected no {design.leakage.ngram}-gram spillover between treated and control items "
                                                 f"or into held-out probes; {spillover.describe(spilled[0], design.leakage.ngram)}")

    insertions = _place(items, payload_frame, design, design_file, n_sequences, blocked)
    placements = _merge_placements(whole, insertions, run.seq_len)

    experiments_json = [spec.to_json() for spec in specs]
    plan = {
        "designkit_version": designkit.__version__,
        "name": design.name,
        "seed": design.seed,
        "design": design_to_dict(design),
        "geometry": plan_types.Geometry(
            seq_len=run.seq_len,
            global_batch=run.global_batch,
            steps=run.steps,
            n_sequences=n_sequences,
            total_tokens=total_tokens,
            corpus_epochs=epochs,
        ).to_json(),
        "corpus": plan_types.CorpusInfo(
            source=run.corpus,
            path=str(corpus.path.resolve()),
            fingerprint=corpus.fingerprint,
            dtype=corpus.meta["dtype"],
            vocab_size=corpus.vocab_size,
            eos_id=corpus.eos_id,
            n_tokens=corpus.n_tokens,
            train_tokens=train_tokens,
            reserve_tokens=corpus.n_tokens - train_tokens,
        ).to_json(),
        "model": plan_types.ModelInfo(
            config=model,
            checkpoint=run.model.checkpoint,
            # continual pretraining: train refuses weights that changed since planning
            checkpoint_sha256=file_hashes.sha256_file(Path(run.model.checkpoint) / "lit_model.pth") if run.model.checkpoint else None,
            name=run.model.name,
            n_params=model_config.parameter_count(model),
        ).to_json(),
        "training": resolve_training(design).to_json(),
        "experiments": experiments_json,
        "assignment": pd.concat([exp.rounding for exp in experiments]).to_dict("records"),
        "budget": budget_info,
        "power": _power_rows(experiments_json, design.analysis.alpha, design.analysis.power),
        "leakage": leak,
        "spillover": spill,
    }
    plan = json.loads(json.dumps(plan, default=_json_default))
    reserved = pd.concat([reserve.table(), slot_rows], ignore_index=True) if len(slot_rows) else reserve.table()
    plan_hash = write_plan(out, plan, items, payload_frame, tables.instances, payload_tokens, payload_index, placements, reserved, tokenizer.directory, replace=True)
    return PlanResult(path=out, plan_hash=plan_hash, meta=plan)


def _json_default(value: Any) -> Any:
    plain = plain_scalar(value)
    if plain is not value:  # a numpy scalar, now its Python number
        return plain
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _reserve_controller_slots(specs: list[plan_types.ExperimentSpec], items: pd.DataFrame, design: Design,
                              blocked: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """Slots of every controlled experiment, and the sequences insertions must now avoid."""
    parts = []
    for exp in specs:
        if exp.controller is None:  # none, or a placebo experiment (nothing is trained)
            continue
        spec = ControllerSpec.from_json(exp.controller)
        mine = items[(items["experiment"] == exp.name) & items["inserted"]]
        frame = slots.reserve_slots(
            exp.name, every=spec.every, slots_per_interval=spec.slots_per_interval,
            slot_tokens=int(mine["footprint"].max()) if len(mine) else 2, steps=design.run.steps,
            global_batch=design.run.global_batch, seq_len=design.run.seq_len, blocked=blocked,
            rng=derive_rng(design.seed, "controller slots", exp.name),
        )
        blocked = np.union1d(blocked, frame["global_seq"].to_numpy(np.int64))
        parts.append(frame)
    return (pd.concat(parts, ignore_index=True) if parts else reserve_empty()), blocked


def _insertion_units(items: pd.DataFrame, payloads: pd.DataFrame) -> pd.DataFrame:
    """What the placement places, one row per unit: a payload with its own dose, or (a kind
    whose ``dose_counts`` is ``item``) a whole item of several payloads, placed ``dose`` times
    with room for its longest payload and cycled over its payloads in time order.

    Units follow item order, then payload order; for single-payload items the unit is the
    payload and the item alike, so their placements are those of a one-payload plan."""
    item_of = payloads["item_index"].to_numpy(np.int64)
    # a controlled experiment's doses are decided during training, in its reserved slots
    inserted = (items["inserted"] & (items["edit"] == "insert") & ~items["controlled"]).to_numpy()[item_of]
    n_payloads = items["n_payloads"].to_numpy(np.int64)[item_of]
    cycled = (items["dose_counts"].to_numpy(object)[item_of] == "item") & (n_payloads > 1)
    keep = inserted & (~cycled | (payloads["ordinal"].to_numpy() == 0))
    rows = np.flatnonzero(keep)
    item = item_of[rows]
    return pd.DataFrame({
        "item_index": item.astype(np.int32),
        "payload_index": rows.astype(np.int32),
        "cycled": cycled[rows],
        "n_payloads": n_payloads[rows],
        "footprint": np.where(cycled[rows], items["footprint"].to_numpy(np.int64)[item], payloads["footprint"].to_numpy(np.int64)[rows]),
        "dose": np.where(cycled[rows], items["dose"].to_numpy(np.int64)[item], payloads["dose"].to_numpy(np.int64)[rows]),
    })


def _place(items: pd.DataFrame, payloads: pd.DataFrame, design: Design, design_file: Path, n_sequences: int, blocked: np.ndarray) -> pd.DataFrame:
    units = _insertion_units(items, payloads)
    windows = items[["window_start", "window_end"]].to_numpy()[units["item_index"].to_numpy()]
    lo_hi = [placement.window_sequences((s, e), n_sequences) for s, e in windows]
    request = placement.InsertionRequest(
        item_index=np.arange(len(units), dtype=np.int32),  # unit numbers; mapped to items and payloads below
        footprint=units["footprint"].to_numpy(np.int64),
        dose=units["dose"].to_numpy(np.int64),
        window_lo=np.array([w[0] for w in lo_hi], dtype=np.int64),
        window_hi=np.array([w[1] for w in lo_hi], dtype=np.int64),
    )
    explicit = {}
    item_ids, positions_of = items["item_id"].to_numpy(object), items["positions"].to_numpy(object)
    for pos, (item, dose, cycled, n_payloads) in enumerate(units[["item_index", "dose", "cycled", "n_payloads"]].itertuples(index=False)):
        positions = positions_of[item]
        if positions is None:
            continue
        item_id = item_ids[item]
        if n_payloads > 1 and not cycled:
            raise InputError(design_file, f"items {item_id}.positions", f"expected no positions for an item of {n_payloads} payloads each placed dose times (positions need one payload, or a kind whose dose counts the item)")
        if len(positions) != dose or any(not (0 <= p < n_sequences) for p in positions):
            raise InputError(design_file, f"items {item_id}.positions", f"expected {dose} global sequence indices in [0, {n_sequences}), got {positions}")
        explicit[pos] = np.asarray(positions, dtype=np.int64)
    try:
        frame = placement.place_insertions(
            request,
            n_sequences=n_sequences,
            seq_len=design.run.seq_len,
            rng=derive_rng(design.seed, "placement"),
            blocked_sequences=blocked,
            explicit=explicit,
        )
    except InputError as exc:
        field = exc.field
        if field and field.startswith("item "):
            field = f"items {item_ids[units['item_index'].iloc[int(field.split()[1])]]}"
        raise InputError(design_file, field, exc.detail) from None
    _unit_to_payload(frame, units, payloads)
    frame["edit"] = _edit_column(np.zeros(len(frame), dtype=np.int8))
    frame["reserve_seq"] = np.int64(-1)
    _noise_columns(frame, items)
    return frame


def _unit_to_payload(frame: pd.DataFrame, units: pd.DataFrame, payloads: pd.DataFrame) -> None:
    """Placements of units → placements of payloads (in place): the item, the payload and its
    repetition; a cycled item's ``k``-th insertion in time order is payload ``k mod n``, its
    ``k div n``-th repetition, covering that payload's own tokens (within the room placed)."""
    unit = frame["item_index"].to_numpy(np.int64)
    repetition = frame["repetition"].to_numpy(np.int64)
    cycled = units["cycled"].to_numpy(bool)[unit]
    n = units["n_payloads"].to_numpy(np.int64)[unit]
    payload = units["payload_index"].to_numpy(np.int64)[unit] + np.where(cycled, repetition % n, 0)
    frame["item_index"] = units["item_index"].to_numpy(np.int32)[unit]
    frame.insert(4, "payload_index", payload.astype(np.int32))
    frame["repetition"] = np.where(cycled, repetition // n, repetition).astype(np.int32)
    frame["n_tokens"] = payloads["footprint"].to_numpy(np.int32)[payload]


def _edit_column(codes: np.ndarray) -> pd.Categorical:
    """An edit column as int8 codes into EDIT_KINDS: 10M placements need 10 MB, not 10M Python strings."""
    return pd.Categorical.from_codes(codes, categories=list(plan_types.EDIT_KINDS))


class RunWindows:
    """The training-region windows the run reads, for whole-sequence kinds (``PlanContext``)."""

    def __init__(self, tokens: np.ndarray, order: BaseOrder, window_tokens: int, n_visited: int, *, n_sequences: int, train_tokens: int):
        self.corpus_tokens = tokens
        self.order = order
        self.window_tokens = window_tokens
        self.n_visited = n_visited  # epoch-0 positions the run reaches: every window there is read
        self.n_sequences = n_sequences
        self.train_tokens = train_tokens
        self.claimed: set[int] = set()

    def sample_spans(self, n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``PlanContext.sample_run_spans``: spans starting in windows the run reads (they may run
        into the next window; the span finder sees that)."""
        region = self.order.n_windows * self.window_tokens
        if length > region:
            raise InputError(None, "items.generate", f"expected spans shorter than the training region's {region:,} tokens, got {length:,}")
        windows = self.order.window_of(rng.integers(self.n_visited, size=n))
        starts = np.minimum(windows * self.window_tokens + rng.integers(self.window_tokens, size=n), region - length)
        tokens = np.asarray(self.corpus_tokens[starts[:, None] + np.arange(length)], dtype=np.int64) if n else np.zeros((0, length), np.int64)
        return starts.astype(np.int64), tokens

    def find_spans(self, spans) -> span_finder.SpanHits:
        """``PlanContext.find_spans``: the spans' hits in the training region, with ``in_reserve``."""
        hits = span_finder.find_span_hits(
            self.corpus_tokens, spans, window_tokens=self.window_tokens, order=self.order, n_sequences=self.n_sequences
        )
        in_reserve = np.zeros(len(hits.windows), dtype=bool)
        in_reserve[span_finder.find_span_starts(self.corpus_tokens, spans, start=self.train_tokens).span] = True
        return dataclasses.replace(hits, in_reserve=in_reserve)

    def claim(self, windows) -> bool:
        wanted = {int(w) for w in windows}
        if wanted & self.claimed:
            return False
        self.claimed |= wanted
        return True

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        free = self.n_visited - len(self.claimed)
        if n > free:
            raise InputError(None, "items.generate", f"expected at most the {free:,} corpus windows the run reads and no other experiment took, got n={n:,}")
        chosen: list[int] = []
        while len(chosen) < n:  # rejection of windows another experiment took: rare, few rounds
            positions = rng.choice(self.n_visited, size=min(self.n_visited, n - len(chosen) + len(self.claimed)), replace=False)
            for w in self.order.window_of(np.sort(positions)).tolist():
                if w not in self.claimed and len(chosen) < n:
                    self.claimed.add(w)
                    chosen.append(w)
        return np.asarray(chosen, dtype=np.int64)

    def tokens(self, window: int) -> np.ndarray:
        start = int(window) * self.window_tokens
        return np.asarray(self.corpus_tokens[start : start + self.window_tokens])


def _noise_seeds(items: pd.DataFrame, seed: int) -> np.ndarray:
    """One noise seed per item of an experiment with noise on some arm (the same at every
    repetition: one watermark per item), else -1. Control items get one too: a fresh
    watermark that is never trained, whose statistic is the null distribution (GW)."""
    seeds = np.full(len(items), -1, dtype=np.int64)
    noisy = items["watermarked"].to_numpy(bool) | (items["noise_std"].to_numpy() > 0)
    for experiment in pd.unique(items.loc[noisy, "experiment"]):
        rows = np.flatnonzero(noisy & (items["experiment"] == experiment).to_numpy())
        seeds[rows] = derive_rng(seed, str(experiment), "noise").integers(0, 2**62, size=len(rows))
    return seeds


def _noise_columns(frame: pd.DataFrame, items: pd.DataFrame) -> None:
    index = frame["item_index"].to_numpy()
    frame["noise_seed"] = items["noise_seed"].to_numpy(np.int64)[index] if len(frame) else np.zeros(0, np.int64)
    frame["noise_std"] = items["noise_std"].to_numpy(np.float32)[index] if len(frame) else np.zeros(0, np.float32)


def _place_whole_sequences(
    items: pd.DataFrame, design: Design, n_sequences: int, order: BaseOrder, reserve: ReserveAllocator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Remove and noise edits (placed first), and every sequence insertions must avoid."""
    replacing = ((items["edit"] == "remove").to_numpy() & (items["replacement_window"].to_numpy(np.int64) >= 0)
                 & np.array([len(w) == 0 for w in items["corpus_windows"]], dtype=bool))
    whole = items[(items["edit"] != "insert").to_numpy() & ~replacing]
    columns = {"global_seq": np.int64, "offset": np.int32, "n_tokens": np.int32, "item_index": np.int32, "payload_index": np.int32, "repetition": np.int32}
    empty = pd.DataFrame({c: np.zeros(0, dtype=t) for c, t in columns.items()})
    if replacing.any():
        return _place_reserve_items(items, replacing, whole, design, n_sequences, order, reserve)
    if whole.empty:
        empty["edit"], empty["reserve_seq"] = _edit_column(np.zeros(0, dtype=np.int8)), np.zeros(0, np.int64)
        _noise_columns(empty, items)
        return empty, np.zeros(0, dtype=np.int64)
    lo_hi = [placement.window_sequences((s, e), n_sequences) for s, e in zip(whole["window_start"], whole["window_end"])]
    # one request row per (item, window): an item may occupy several windows (a recurring or straddling span)
    per_item = np.array([len(w) for w in whole["corpus_windows"]], dtype=np.int64)
    rows = np.repeat(np.arange(len(whole)), per_item)
    request = placement.WholeSequenceRequest(
        item_index=whole["item_index"].to_numpy(np.int32)[rows],
        corpus_window=np.fromiter((w for ws in whole["corpus_windows"] for w in ws), dtype=np.int64, count=int(per_item.sum())),
        edited=whole["inserted"].to_numpy(bool)[rows],
        window_lo=np.array([w[0] for w in lo_hi], dtype=np.int64)[rows],
        window_hi=np.array([w[1] for w in lo_hi], dtype=np.int64)[rows],
    )
    frame, blocked = placement.place_whole_sequences(request, order, n_sequences=n_sequences, seq_len=design.run.seq_len)
    frame.insert(4, "payload_index", np.full(len(frame), -1, dtype=np.int32))  # a whole-sequence edit writes no payload
    frame["edit"] = _edit_column(pd.Categorical(items["edit"], categories=list(plan_types.EDIT_KINDS)).codes[frame["item_index"].to_numpy()])
    frame["reserve_seq"] = np.int64(-1)
    removed = (frame["edit"] == "remove").to_numpy()
    rng = derive_rng(design.seed, "reserve", "removal")
    experiment_of = items["experiment"].to_numpy(object)[frame["item_index"].to_numpy()]
    for experiment in pd.unique(experiment_of[removed]):
        rows = np.flatnonzero(removed & (experiment_of == experiment))
        # an item that is its own replacement (texts' i.i.d. replacement) trains its reserve window at every visit
        fixed = items["replacement_window"].to_numpy(np.int64)[frame["item_index"].to_numpy()[rows]]
        frame.loc[rows[fixed >= 0], "reserve_seq"] = fixed[fixed >= 0]
        rows = rows[fixed < 0]
        # a fresh reserve window per removed visit: replacements are i.i.d. with training data and trained once
        windows = reserve.take("removal replacement", len(rows), rng, experiment=str(experiment), global_seq=frame["global_seq"].to_numpy()[rows])
        frame.loc[rows, "reserve_seq"] = windows
    _noise_columns(frame, items)
    return frame, blocked


def _place_reserve_items(
    items: pd.DataFrame, replacing: np.ndarray, whole: pd.DataFrame, design: Design, n_sequences: int, order: BaseOrder, reserve: ReserveAllocator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Reserve-window items (``Item.replacement_window``, no corpus windows): a treated one replaces exactly the global
    sequences in its ``positions`` with its own reserve window (e.g. a whole batch, FC);
    then the corpus-window edits of the other items, which must not touch those sequences."""
    rest = items.copy()
    rest.loc[replacing, "edit"] = "insert"  # hidden from the corpus-window placement below
    rest.loc[replacing, "inserted"] = False
    frame, blocked = _place_whole_sequences(rest, design, n_sequences, order, reserve)
    treated = items[replacing & items["inserted"].to_numpy(bool)]
    counts = np.array([0 if p is None else len(p) for p in treated["positions"]], dtype=np.int64)
    seqs = np.fromiter((g for p in treated["positions"] if p is not None for g in p), dtype=np.int64, count=int(counts.sum()))
    if (counts == 0).any():
        raise InputError(None, f"items {treated['item_id'].iloc[int(np.argmax(counts == 0))]}.positions", "expected a treated reserve-window item to name the global sequences it replaces")
    if ((seqs < 0) | (seqs >= n_sequences)).any() or len(np.unique(seqs)) != len(seqs) or np.isin(seqs, blocked).any():
        raise InputError(None, "positions", f"expected distinct global sequences in [0, {n_sequences}) that no other whole-sequence edit uses")
    rows = np.repeat(np.arange(len(treated)), counts)
    repetition = np.concatenate([np.arange(c) for c in counts]).astype(np.int32) if len(counts) else np.zeros(0, np.int32)
    replaced = pd.DataFrame({
        "global_seq": seqs,
        "offset": np.zeros(len(seqs), np.int32),
        "n_tokens": np.full(len(seqs), design.run.seq_len + 1, np.int32),
        "item_index": treated["item_index"].to_numpy(np.int32)[rows],
        "payload_index": np.full(len(seqs), -1, np.int32),  # a whole-sequence edit writes no payload
        "repetition": repetition,
    })
    replaced["edit"] = _edit_column(np.full(len(seqs), list(plan_types.EDIT_KINDS).index("remove"), dtype=np.int8))
    replaced["reserve_seq"] = treated["replacement_window"].to_numpy(np.int64)[rows]
    _noise_columns(replaced, items)
    reserve.record_replacements(replaced["reserve_seq"].to_numpy(), seqs)
    frame = pd.concat([frame, replaced[frame.columns]], ignore_index=True) if len(frame) else replaced
    frame = frame.sort_values("global_seq", kind="stable").reset_index(drop=True)
    return frame, np.union1d(blocked, seqs)


def _merge_placements(whole: pd.DataFrame, insertions: pd.DataFrame, seq_len: int) -> pd.DataFrame:
    if whole.empty:
        return insertions
    frame = pd.concat([whole[insertions.columns], insertions], ignore_index=True)
    order = placement._order_by(frame["global_seq"].to_numpy(), frame["offset"].to_numpy(), seq_len + 2)
    return frame.take(order).reset_index(drop=True)


def _inserted_texts(items: pd.DataFrame, payloads: pd.DataFrame, payload_tokens: np.ndarray, payload_index: np.ndarray):
    """Payload rows (with their items' columns), tokens and offsets of the payloads whose text is
    edited into the run (not corpus windows)."""
    rows = leakage.payload_rows(items, payloads)
    return leakage.select_items(rows, payload_tokens, payload_index, (rows["edit"] == "insert").to_numpy())
