"""The design file: schema and validation of DESIGN.yaml.

This module is the boundary for designs: everything is checked here once, and the planner
assumes a valid ``Design``. Every error is one line naming the file, the key path and what
was expected (``designkit.errors.InputError``, exit code 2).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from designkit import model_config, schema, yaml_files
from designkit.data import sources, stdlib_docs
from designkit.errors import InputError, quote
from designkit.kinds import KINDS
from designkit.schema import bounded

NAME_PATTERN = re.compile(r"[a-z0-9_-]+")  # always fullmatch: `$` would accept a trailing newline
SHARE_TOLERANCE = 1e-6
Precision = Literal[
    "32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "transformer-engine", "transformer-engine-float16"
]
"""Lightning Fabric's precision settings."""


@dataclass(frozen=True)
class ModelSpec:
    """Exactly one of ``config``, ``name`` or ``checkpoint``."""

    config: dict[str, Any] | None = None
    """``litgpt.config.Config`` keyword arguments for a model trained from scratch."""
    name: str | None = None
    """A LitGPT config name (e.g. ``pythia-14m``), randomly initialised."""
    checkpoint: str | None = None
    """A LitGPT checkpoint directory to continue pretraining from (its config and tokenizer are used)."""


@dataclass(frozen=True)
class TokenizerSpec:
    """Exactly one of ``train_vocab`` or ``path`` (a bare string means ``path``)."""

    train_vocab: int | None = bounded(None, ge=300, le=2**24)
    """Train a byte-level BPE of this vocabulary size on the corpus."""
    path: str | None = None
    """A directory holding ``tokenizer.json`` (and ``tokenizer_config.json``)."""

    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


@dataclass(frozen=True)
class TrainingSpec:
    learning_rate: float = bounded(6e-4, gt=0)
    """Peak AdamW learning rate."""
    min_lr: float | None = bounded(None, ge=0)
    """Floor of the cosine decay (at most ``learning_rate``); default one tenth of ``learning_rate``."""
    warmup_steps: int | None = bounded(None, ge=0)
    """Linear warmup steps; default 2% of the run (at least 1)."""
    weight_decay: float = bounded(0.1, ge=0)
    beta1: float = bounded(0.9, ge=0, lt=1)
    beta2: float = bounded(0.95, ge=0, lt=1)
    eps: float = bounded(1e-8, gt=0)
    grad_clip: float = bounded(1.0, ge=0)
    """Clip the global gradient norm to this value (0 disables clipping)."""
    micro_batch_size: int | None = bounded(None, ge=1)
    """Sequences per device per forward pass (a divisor of ``global_batch``); default: the whole per-device batch."""
    precision: Precision | None = None
    """Fabric precision; default ``bf16-mixed`` on GPU, ``32-true`` on CPU."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""
    checkpoints: int | list[int] = 4
    """Number of evenly spaced checkpoints (the last step always included), or explicit steps."""
    save_initial: bool = True
    """Also save the untrained model as step 0, the baseline for effects over training."""
    log_every: int = bounded(10, ge=1)
    """Optimizer steps between metrics rows."""


@dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    corpus: str
    """``builtin:stdlib-docs`` or a prepared corpus directory (relative to the design file)."""
    seq_len: int = bounded(ge=1)
    """Tokens per training sequence."""
    global_batch: int = bounded(ge=1)
    """Sequences per optimizer step, over all devices."""
    steps: int = bounded(ge=1)
    """Optimizer steps."""
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    """Only for ``builtin:`` corpora; a prepared corpus carries its own tokenizer."""
    max_injected_fraction: float = bounded(0.05, gt=0, le=1)
    """Refuse plans that overwrite more than this share of all training tokens."""
    reserve_fraction: float = bounded(0.05, ge=0, lt=0.5)
    """Share of the corpus (its tail) kept out of training: removals, i.i.d. controls, reserve texts."""
    training: TrainingSpec = field(default_factory=TrainingSpec)


@dataclass(frozen=True)
class ItemsSpec:
    """Exactly one of ``generate`` (seeded synthetic items) or ``path`` (a .jsonl/.parquet file)."""

    generate: dict[str, Any] | None = None
    path: str | None = None

    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


@dataclass(frozen=True)
class ArmSpec:
    dose: int = bounded(ge=0)
    """Planned insertions of each item of the arm (0: control)."""
    share: float = bounded(gt=0, le=1)
    """Share of the experiment's items assigned to this arm."""
    window: tuple[float, float] | None = None
    """Fraction of the run where this arm's insertions land; default: the experiment's window."""


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    kind: str
    """A registered kind (``contamination``, ``canary``, ``texts``, or one an installed package
    declares under the ``designkit.kinds`` entry points), or an import path ``module:Class``
    of an ``ExperimentKind`` subclass. Naming a module runs its code."""
    items: ItemsSpec
    arms: dict[str, ArmSpec]
    stratify_by: str | None = None
    """Item field to stratify the randomization by; ``stratum`` names the kind's own stratum."""
    window: tuple[float, float] = (0.0, 1.0)
    """Fraction of the run where insertions may land."""
    placebo: bool = False
    """A/A check: arms are assigned and scored as usual, but nothing is ever inserted."""
    params: dict[str, Any] = field(default_factory=dict)
    """Kind-specific parameters (see the kind's ``Params``)."""
    interference_margin: float | None = None
    """Equivalence margin of interference tests (``designkit analyze-interference``), in the units of
    the experiment's primary outcome (e.g. 0.01 = 1 pp of accuracy, 0.02 nats of loss): another
    experiment's data is "negligible" for this one only if its effect's CI lies inside ±margin."""


@dataclass(frozen=True)
class LeakageSpec:
    ngram: int = bounded(13, ge=4)
    """n-gram length in tokens (lm-eval decontamination uses 13-grams)."""
    on_overlap: Literal["warn", "error"] = "warn"
    """``error`` refuses a plan with any overlap; ``warn`` reports it."""
    scan_corpus: bool = True
    """Check items against the base corpus (every training token)."""
    max_corpus_tokens: int | None = bounded(None, ge=1)
    """Scan at most this many corpus tokens (evenly spaced chunks); default: all."""

    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return {"on_overlap": value} if isinstance(value, str) else value


@dataclass(frozen=True)
class AnalysisSpec:
    """How the run is planned for and analyzed; every summary and report string uses these values."""

    alpha: float = bounded(0.05, gt=0, lt=1)
    """Two-sided level of every test; confidence intervals have level 1 - alpha. The plan's
    minimal detectable effects use it too."""
    power: float = bounded(0.8, gt=0, lt=1)
    """Power at which the plan's (and the report's achieved) minimal detectable effects are computed."""
    multiplicity: Literal["holm", "fdr_bh"] = "holm"
    """Multiple-testing adjustment within each family (confirmatory: each experiment's primary
    outcome at the final checkpoint; exploratory: the rest): ``holm`` (family-wise error) or
    ``fdr_bh`` (Benjamini-Hochberg false discovery rate)."""
    continuous_method: Literal["welch", "bootstrap"] = "welch"
    """Default estimator of continuous outcomes: ``welch`` (Welch t interval and test) or
    ``bootstrap`` (BCa bootstrap interval, Welch-t permutation test; slower). An outcome
    whose kind names its own estimator keeps it."""
    equivalence_margin: float | None = bounded(None, gt=0)
    """TOST margin (in Cohen's d / h units) for interference and placebo checks; None: no TOST."""


@dataclass(frozen=True)
class Design:
    name: str
    seed: int = bounded(ge=0)
    run: RunSpec
    experiments: list[ExperimentSpec]
    description: str = ""
    leakage: LeakageSpec = field(default_factory=LeakageSpec)
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)


def _resolve(base_dir: Path, text: str, file: Path, field: str) -> Path:
    """``text`` as a path relative to the design's directory; InputError if it cannot be one."""
    try:
        return (base_dir / text).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a loop of links
        raise InputError(file, field, f"expected a path, got {quote(text)} ({exc})") from None


def _shown(path: Path, limit: int = 160) -> str:
    """A resolved path for a message: whole when reasonable, else its start and its end."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2 - 1]}…{text[-(limit // 2):]}"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system is no file there
        return False


def _check_window(window: tuple[float, float], file: Path, path: str) -> None:
    lo, hi = window
    if not (0.0 <= lo < hi <= 1.0):
        raise InputError(file, path, f"expected 0 <= start < end <= 1, got [{lo}, {hi}]")


def _check_experiment(exp: ExperimentSpec, i: int, file: Path, base_dir: Path) -> ExperimentSpec:
    at = f"experiments[{i}]"
    if not NAME_PATTERN.fullmatch(exp.name):
        raise InputError(file, f"{at}.name", f"expected [a-z0-9_-]+, got {quote(exp.name)}")
    kind = KINDS.get(exp.kind, file=file, field=f"{at}.kind")  # an import path module:attr runs that module
    params = schema.from_dict(kind.Params, exp.params, file, f"{at}.params")
    if (exp.items.generate is None) == (exp.items.path is None):
        raise InputError(file, f"{at}.items", "expected exactly one of generate or path")
    items = exp.items
    options = None
    if items.generate is not None:
        if kind.GenerateParams is None:
            raise InputError(file, f"{at}.items.generate", f"kind {quote(exp.kind)} cannot generate items; give a path")
        options = schema.from_dict(kind.GenerateParams, items.generate, file, f"{at}.items.generate")
    try:
        getattr(kind, "check", lambda params, options: None)(params, options)
    except InputError as exc:
        raise InputError(file, f"{at}.{exc.field}" if exc.field else at, exc.detail) from None
    if items.generate is None:
        resolved = _resolve(base_dir, items.path, file, f"{at}.items")
        if not _is_file(resolved):
            raise InputError(file, f"{at}.items", f"expected an existing .jsonl or .parquet file, got {quote(items.path)} (resolved to {_shown(resolved)})")
        if resolved.suffix not in (".jsonl", ".parquet"):
            raise InputError(file, f"{at}.items", f"expected a .jsonl or .parquet file, got {quote(items.path)}")
        items = replace(items, path=str(resolved))
    if not exp.arms:
        raise InputError(file, f"{at}.arms", "expected at least one arm")
    controls = []
    for arm, spec in exp.arms.items():
        if not NAME_PATTERN.fullmatch(arm):
            raise InputError(file, f"{at}.arms.{arm}", f"expected an arm name matching [a-z0-9_-]+, got {quote(arm)}")
        if spec.dose < 0:
            raise InputError(file, f"{at}.arms.{arm}.dose", f"expected a dose >= 0, got {spec.dose}")
        if not (0.0 < spec.share <= 1.0):
            raise InputError(file, f"{at}.arms.{arm}.share", f"expected a share in (0, 1], got {spec.share}")
        if spec.window is not None:
            _check_window(spec.window, file, f"{at}.arms.{arm}.window")
        if spec.dose == 0:
            controls.append(arm)
    total = math.fsum(spec.share for spec in exp.arms.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise InputError(file, f"{at}.arms", f"expected shares summing to 1, got {total:g}")
    if len(controls) > 1:
        raise InputError(file, f"{at}.arms", f"expected at most one control arm (dose 0), got {', '.join(controls)}")
    if exp.placebo and (not controls or len(exp.arms) < 2):
        raise InputError(file, f"{at}.arms", "expected a control arm (dose 0) and at least one other arm for a placebo experiment")
    _check_window(exp.window, file, f"{at}.window")
    if exp.interference_margin is not None and not exp.interference_margin > 0:
        raise InputError(file, f"{at}.interference_margin", f"expected a positive number, got {exp.interference_margin}")
    return replace(exp, items=items)


def _check_run(run: RunSpec, file: Path, base_dir: Path) -> RunSpec:
    for key in ("seq_len", "global_batch", "steps"):
        if getattr(run, key) < 1:
            raise InputError(file, f"run.{key}", f"expected a positive integer, got {getattr(run, key)}")
    if run.steps * run.global_batch * run.seq_len > schema.INT64_MAX:
        raise InputError(file, "run.steps", f"expected steps × global_batch × seq_len tokens within 64 bits, got {run.steps:,} × {run.global_batch:,} × {run.seq_len:,}")
    if not (0.0 < run.max_injected_fraction <= 1.0):
        raise InputError(file, "run.max_injected_fraction", f"expected a fraction in (0, 1], got {run.max_injected_fraction}")
    if not (0.0 <= run.reserve_fraction < 0.5):
        raise InputError(file, "run.reserve_fraction", f"expected a fraction in [0, 0.5), got {run.reserve_fraction}")
    model = run.model
    given = [k for k in ("config", "name", "checkpoint") if getattr(model, k) is not None]
    if len(given) != 1:
        raise InputError(file, "run.model", f"expected exactly one of config, name or checkpoint, got {given or 'none'}")
    if model.checkpoint is not None:
        checkpoint = _resolve(base_dir, model.checkpoint, file, "run.model.checkpoint")
        if not _is_file(checkpoint / "lit_model.pth"):
            raise InputError(file, "run.model.checkpoint", f"expected a LitGPT checkpoint directory holding lit_model.pth, got {quote(model.checkpoint)} (resolved to {_shown(checkpoint)})")
        model = replace(model, checkpoint=str(checkpoint))
    corpus = run.corpus
    builtin = f"{sources.BUILTIN_PREFIX}{stdlib_docs.BUILTIN_NAME}"
    if corpus.startswith(sources.BUILTIN_PREFIX) and corpus != builtin:
        raise InputError(file, "run.corpus", f"expected {builtin} or a prepared corpus directory, got {quote(corpus)}")
    if not corpus.startswith("builtin:"):
        resolved = _resolve(base_dir, corpus, file, "run.corpus")
        if not _is_file(resolved / "corpus.json"):
            raise InputError(file, "run.corpus", f"expected builtin:stdlib-docs or a prepared corpus directory, got {quote(corpus)} (resolved to {_shown(resolved)})")
        corpus = str(resolved)
    tokenizer = run.tokenizer
    if corpus.startswith("builtin:") and model.checkpoint is None:
        if (tokenizer.train_vocab is None) == (tokenizer.path is None):
            raise InputError(file, "run.tokenizer", "expected exactly one of train_vocab or path for a builtin corpus")
    if tokenizer.path is not None:
        resolved = _resolve(base_dir, tokenizer.path, file, "run.tokenizer.path")
        if not _is_file(resolved / "tokenizer.json"):
            raise InputError(file, "run.tokenizer.path", f"expected a directory holding tokenizer.json, got {quote(tokenizer.path)}")
        tokenizer = replace(tokenizer, path=str(resolved))
    training = run.training
    if training.learning_rate <= 0:
        raise InputError(file, "run.training.learning_rate", f"expected a positive number, got {training.learning_rate}")
    if training.min_lr is not None and training.min_lr > training.learning_rate:
        raise InputError(file, "run.training.min_lr", f"expected at most learning_rate {training.learning_rate:g}, got {training.min_lr:g}")
    if training.micro_batch_size is not None and run.global_batch % training.micro_batch_size:
        raise InputError(file, "run.training.micro_batch_size", f"expected a divisor of global_batch {run.global_batch}, got {training.micro_batch_size}")
    if isinstance(training.checkpoints, int):
        if training.checkpoints < 1:
            raise InputError(file, "run.training.checkpoints", f"expected at least 1, got {training.checkpoints}")
    elif not training.checkpoints or any(not (1 <= s <= run.steps) for s in training.checkpoints):
        raise InputError(file, "run.training.checkpoints", f"expected steps in [1, {run.steps}], got {training.checkpoints}")
    block_size = model_config.block_size(model, file)
    if block_size is not None and run.seq_len > block_size:
        raise InputError(file, "run.seq_len", f"expected at most the model's block_size {block_size}, got {run.seq_len}")
    return replace(run, model=model, corpus=corpus, tokenizer=tokenizer)


def parse_design(raw: Any, file: str | Path) -> Design:
    """Validate a parsed YAML document; relative paths resolve against the file's directory."""
    file = Path(file)
    base_dir = file.resolve().parent
    if isinstance(raw, dict) and "power" in raw:
        raise InputError(file, "power", "expected alpha and power under analysis: (analysis.alpha, analysis.power); "
                                        "the power: block moved there")
    design = schema.from_dict(Design, raw, file)
    if not NAME_PATTERN.fullmatch(design.name):
        raise InputError(file, "name", f"expected [a-z0-9_-]+, got {quote(design.name)}")
    if design.seed < 0:
        raise InputError(file, "seed", f"expected a non-negative integer, got {design.seed}")
    if not design.experiments:
        raise InputError(file, "experiments", "expected at least one experiment")
    seen: dict[str, int] = {}
    experiments = []
    for i, exp in enumerate(design.experiments):
        if exp.name in seen:
            raise InputError(file, f"experiments[{i}].name", f"expected a unique name, {quote(exp.name)} is also experiments[{seen[exp.name]}]")
        seen[exp.name] = i
        experiments.append(_check_experiment(exp, i, file, base_dir))
    if design.leakage.ngram < 4:
        raise InputError(file, "leakage.ngram", f"expected at least 4 tokens, got {design.leakage.ngram}")
    run = _check_run(design.run, file, base_dir)
    return replace(design, run=run, experiments=experiments)


def design_warnings(design: Design, file: str | Path) -> list[str]:
    """Valid but probably unintended choices, one line each (``FILE: KEY: …``), for stderr."""
    messages = []
    for i, exp in enumerate(design.experiments):
        if not exp.placebo and not any(arm.dose == 0 for arm in exp.arms.values()):
            messages.append(
                f"{file}: experiments[{i}].arms: no control arm (dose 0) in experiment {exp.name!r}: its arms are "
                "planned and scored, but no effect is estimated against a control (add an arm with dose: 0)"
            )
    return messages


def load_design(path: str | Path, *, corpus: str | Path | None = None) -> Design:
    """``corpus`` (a command line's ``--corpus``) replaces ``run.corpus``; a relative path is
    taken from the working directory, as every command-line path is, not from the design's."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "expected an existing design file")
    raw = yaml_files.load(path, what="a readable design file")
    if corpus is not None:
        corpus = str(corpus)
        if not corpus.startswith(sources.BUILTIN_PREFIX):
            corpus = str(Path(corpus).resolve())
        if isinstance(raw, dict) and isinstance(raw.get("run"), dict):
            raw = {**raw, "run": {**raw["run"], "corpus": corpus}}
    return parse_design(raw, path)


def design_to_dict(design: Design) -> dict[str, Any]:
    return schema.to_dict(design)
