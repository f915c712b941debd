"""The records of ``plan.json``, declared once (docs/formats.md, "plan.json").

The planner builds these and writes them with ``to_json``; the plan reader
(``designkit.planning.planfile.Plan``), the engine and the analysis read them back with
``from_json``. Nothing here imports torch, pandas or any other layer of designkit, so every
layer can depend on it. The design file has its own input dataclasses
(``designkit.design``): they document the YAML as the user writes it; the records here are
the resolved experiment as the plan fixes it (arm sizes, control arm, probes, outcomes).

``to_json`` gives exactly the dicts ``plan.json`` holds, so plan bytes do not depend on
which layer built a record. ``from_json`` is tolerant of keys it does not know, so a reader
keeps working when a later format adds one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

OutcomeType = Literal["binary", "continuous"]
OUTCOME_TYPES: tuple[str, ...] = ("binary", "continuous")
AggregateKind = Literal["mean", "cluster_robust"]
AGGREGATES: tuple[str, ...] = ("mean", "cluster_robust")
EditKind = Literal["insert", "remove", "noise"]
EDIT_KINDS: tuple[str, ...] = ("insert", "remove", "noise")


@dataclass(frozen=True)
class OutcomeSpec:
    """One outcome measured on every item of an experiment (``experiments[i].outcomes``)."""

    name: str
    """Outcome name; the `outcome` column of the analysis's long outcome frame holds it."""
    type: OutcomeType
    """`binary` (values 0/1) or `continuous`."""
    primary: bool = False
    """The one confirmatory outcome of the experiment."""
    probe: str = ""
    """Probe whose scores hold the outcome (scores' `probe` column)."""
    column: str = ""
    """Column of that probe's scores holding the outcome."""
    expected_sign: int = 1
    """+1 if a real effect raises the outcome (accuracy), -1 if it lowers it (loss); tests stay two-sided."""
    baseline: float | None = None
    """The control arm's expected value where it is known in advance (chance accuracy)."""
    minus_probe: str | None = None
    """If set, the outcome is `column` of `probe` minus the same column of this probe, per item."""
    description: str = ""
    estimator: str | None = None
    """The analysis estimator (a registered name or ``module:Class``, see
    ``designkit.analysis.estimator``); None: the default for ``type``."""
    aggregate: AggregateKind = "mean"
    """How the analysis treats several probe instances of one item (the item is the randomized
    unit, the cluster):

    - ``mean`` (default): each item's instance outcomes are averaged first (a binary outcome
      becomes the item's proportion), then the item-level values are tested; with more than
      one instance per item a binary outcome's default estimator is the continuous one
      (``analysis.continuous_method``: Welch or bootstrap on item proportions), because
      proportions are not 0/1 values;
    - ``cluster_robust``: the instances themselves enter a regression of the outcome on the
      arm with standard errors clustered by item (estimator ``cluster_robust``: OLS, CR1
      sandwich, t with clusters − 1 degrees of freedom).

    With one instance per item both give the item-level test."""

    def __post_init__(self) -> None:
        if self.type not in OUTCOME_TYPES:
            raise ValueError(f"outcome {self.name!r}: expected type in {OUTCOME_TYPES}, got {self.type!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"outcome {self.name!r}: expected aggregate in {AGGREGATES}, got {self.aggregate!r}")
        if self.expected_sign not in (1, -1):
            raise ValueError(f"outcome {self.name!r}: expected expected_sign +1 or -1, got {self.expected_sign!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "probe": self.probe,
            "column": self.column,
            "minus_probe": self.minus_probe,
            "type": self.type,
            "expected_sign": self.expected_sign,
            "primary": self.primary,
            "baseline": self.baseline,
            "description": self.description,
            # absent unless a kind names one, so plans without it keep their bytes
            **({"estimator": self.estimator} if self.estimator else {}),
            **({"aggregate": self.aggregate} if self.aggregate != "mean" else {}),
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> OutcomeSpec:
        return cls(
            name=str(entry["name"]),
            type=entry["type"],
            primary=bool(entry.get("primary", False)),
            probe=str(entry.get("probe", "")),
            column=str(entry.get("column", "")),
            expected_sign=int(entry.get("expected_sign", 1)),
            baseline=None if entry.get("baseline") is None else float(entry["baseline"]),
            minus_probe=entry.get("minus_probe"),
            description=str(entry.get("description") or ""),
            estimator=entry.get("estimator"),
            aggregate=entry.get("aggregate") or "mean",
        )


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of an experiment (``experiments[i].probes``): a probe type and its fields.

    ``fields`` are the type's own keys (item columns to read, options such as
    ``max_new_tokens``); the engine's probe registry checks them.
    """

    name: str
    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, **self.fields}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ProbeSpec:
        return cls(
            name=str(entry["name"]),
            type=str(entry["type"]),
            fields={k: v for k, v in entry.items() if k not in ("name", "type")},
        )


@dataclass(frozen=True)
class ArmSpec:
    """One arm of an experiment, resolved (``experiments[i].arms[name]``)."""

    name: str
    dose: int
    """Planned repetitions per item (0 for the control arm, nominal for a placebo)."""
    inserted: bool
    """Whether the arm's items are actually edited into training."""
    window: tuple[float, float] | None = None
    """Fraction of the run where the arm's edits may land; None means the whole run."""
    share: float = 0.0
    """Share of the experiment's items the design assigned to the arm."""
    n_items: int = 0
    """Items the randomization put in the arm."""

    def to_json(self) -> dict[str, Any]:
        return {
            "dose": self.dose,
            "share": self.share,
            "n_items": self.n_items,
            "inserted": self.inserted,
            "window": None if self.window is None else list(self.window),
        }

    @classmethod
    def from_json(cls, name: str, entry: Mapping[str, Any]) -> ArmSpec:
        return cls(
            name=str(name),
            dose=int(entry.get("dose", 0)),
            inserted=bool(entry.get("inserted", False)),
            window=parse_window(entry.get("window")),
            share=float(entry.get("share", 0.0)),
            n_items=int(entry.get("n_items", 0)),
        )


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment as the plan fixes it (``plan.json`` ``experiments[i]``)."""

    name: str
    control_arm: str | None
    """Arm every treated arm is compared against (the dose-0 arm); None if there is none."""
    outcomes: tuple[OutcomeSpec, ...]
    arms: tuple[ArmSpec, ...] = ()
    placebo: bool = False
    """A/A check: arms are assigned and scored, nothing is edited into training."""
    kind: str = ""
    """The kind as the design names it (a registered name or ``module:attr``)."""
    stratify_by: str | None = None
    window: tuple[float, float] = (0.0, 1.0)
    """Fraction of the run where the experiment's edits may land (arms may narrow it)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The kind's resolved parameters."""
    probes: tuple[ProbeSpec, ...] = ()
    inloop_every: int | None = None
    """Steps between in-loop evaluations of the experiment's probes on the model being trained
    (``scores/inloop.parquet``); None: checkpoints only."""
    inloop_steps: tuple[int, ...] = ()
    """Further steps at which the experiment's probes are evaluated in the loop (e.g. densely
    right after a forgetting batch was trained); empty: only every ``inloop_every``."""
    controller: Mapping[str, Any] | None = None
    """A run-time dose controller (``designkit.controllers.ControllerSpec`` as JSON), or None."""

    def __post_init__(self) -> None:
        n_primary = sum(o.primary for o in self.outcomes)
        if self.outcomes and n_primary != 1:
            raise ValueError(f"experiment {self.name!r}: expected exactly one primary outcome, got {n_primary}")

    @property
    def primary_outcome(self) -> OutcomeSpec | None:
        return next((o for o in self.outcomes if o.primary), None)

    def outcome(self, name: str) -> OutcomeSpec:
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(f"experiment {self.name!r} has no outcome {name!r}")

    def arm(self, name: str) -> ArmSpec:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"experiment {self.name!r} has no arm {name!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "placebo": self.placebo,
            "control_arm": self.control_arm,
            "stratify_by": self.stratify_by,
            "window": list(self.window),
            "arms": {a.name: a.to_json() for a in self.arms},
            "params": dict(self.params),
            "probes": [p.to_json() for p in self.probes],
            "outcomes": [o.to_json() for o in self.outcomes],
            **({"inloop_every": self.inloop_every} if self.inloop_every else {}),
            **({"inloop_steps": list(self.inloop_steps)} if self.inloop_steps else {}),
            **({"controller": dict(self.controller)} if self.controller else {}),
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ExperimentSpec:
        return cls(
            name=str(entry["name"]),
            control_arm=entry.get("control_arm"),
            outcomes=tuple(OutcomeSpec.from_json(o) for o in entry.get("outcomes", [])),
            arms=tuple(ArmSpec.from_json(name, arm) for name, arm in (entry.get("arms") or {}).items()),
            placebo=bool(entry.get("placebo", False)),
            kind=str(entry.get("kind", "")),
            stratify_by=entry.get("stratify_by"),
            window=parse_window(entry.get("window")) or (0.0, 1.0),
            params=dict(entry.get("params") or {}),
            probes=tuple(ProbeSpec.from_json(p) for p in entry.get("probes", [])),
            inloop_every=int(entry["inloop_every"]) if entry.get("inloop_every") else None,
            inloop_steps=tuple(int(s) for s in entry.get("inloop_steps") or ()),
            controller=dict(entry["controller"]) if entry.get("controller") else None,
        )

    # the analysis's historical spelling
    from_plan = from_json


@dataclass(frozen=True)
class Geometry:
    """``plan.json`` ``geometry``: the shape of the run."""

    seq_len: int
    """Tokens the model reads per sequence (a window holds ``seq_len + 1``)."""
    global_batch: int
    """Sequences per optimizer step, over all devices."""
    steps: int
    n_sequences: int
    """``steps × global_batch``."""
    total_tokens: int
    """``n_sequences × seq_len``."""
    corpus_epochs: float
    """Passes over the corpus's training region the run makes."""
    stream_offset: int = 0
    """Continuation sub-plans: sequence ``g`` reads the base window of sequence ``stream_offset + g``."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "seq_len": self.seq_len,
            "global_batch": self.global_batch,
            "steps": self.steps,
            "n_sequences": self.n_sequences,
            "total_tokens": self.total_tokens,
            "corpus_epochs": self.corpus_epochs,
        }
        if self.stream_offset:  # absent means 0: plans without it keep their bytes
            out["stream_offset"] = self.stream_offset
        return out

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Geometry:
        return cls(
            seq_len=int(entry["seq_len"]),
            global_batch=int(entry["global_batch"]),
            steps=int(entry["steps"]),
            n_sequences=int(entry["n_sequences"]),
            total_tokens=int(entry["total_tokens"]),
            corpus_epochs=float(entry.get("corpus_epochs", 0.0)),
            stream_offset=int(entry.get("stream_offset", 0)),
        )


@dataclass(frozen=True)
class CorpusInfo:
    """``plan.json`` ``corpus``: which corpus, and how it splits into training and reserve."""

    source: str
    """As written in the design."""
    path: str
    """Absolute path of the prepared corpus directory."""
    fingerprint: str
    dtype: str
    vocab_size: int
    eos_id: int
    n_tokens: int
    train_tokens: int
    """Tokens ``[0, train_tokens)`` feed training."""
    reserve_tokens: int
    """Tokens ``[train_tokens, n_tokens)``: the reserve region, read only through reserve windows."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "fingerprint": self.fingerprint,
            "dtype": self.dtype,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "n_tokens": self.n_tokens,
            "train_tokens": self.train_tokens,
            "reserve_tokens": self.reserve_tokens,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> CorpusInfo:
        return cls(
            source=str(entry["source"]),
            path=str(entry["path"]),
            fingerprint=str(entry["fingerprint"]),
            dtype=str(entry["dtype"]),
            vocab_size=int(entry["vocab_size"]),
            eos_id=int(entry["eos_id"]),
            n_tokens=int(entry["n_tokens"]),
            train_tokens=int(entry["train_tokens"]),
            reserve_tokens=int(entry["reserve_tokens"]),
        )


@dataclass(frozen=True)
class ModelInfo:
    """``plan.json`` ``model``: the resolved model."""

    config: Mapping[str, Any]
    """The full ``litgpt.config.Config`` keyword arguments."""
    checkpoint: str | None = None
    """Continual pretraining: the LitGPT checkpoint directory (absolute) to start from."""
    checkpoint_sha256: str | None = None
    """sha256 of the checkpoint's ``lit_model.pth`` at planning time."""
    name: str | None = None
    """The LitGPT config name the design gave, if any."""
    n_params: int = 0
    """Approximate parameter count."""

    def to_json(self) -> dict[str, Any]:
        return {
            "config": dict(self.config),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "name": self.name,
            "n_params": self.n_params,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ModelInfo:
        return cls(
            config=dict(entry["config"]),
            checkpoint=entry.get("checkpoint"),
            checkpoint_sha256=entry.get("checkpoint_sha256"),
            name=entry.get("name"),
            n_params=int(entry.get("n_params") or 0),
        )


@dataclass(frozen=True)
class TrainingSettings:
    """``plan.json`` ``training``: optimizer and loop settings with every default resolved."""

    seed: int
    """Seeds model init, the data order and every other draw of the run."""
    learning_rate: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    grad_clip: float
    micro_batch_size: int | None
    """None: the whole per-device batch in one forward pass."""
    precision: str | None
    """None: ``bf16-mixed`` on GPU, ``32-true`` on CPU."""
    compile: bool
    checkpoint_steps: tuple[int, ...]
    log_every: int
    continuation: Mapping[str, Any] | None = None
    """Continuation sub-plans only: how to go on from the parent checkpoint (``engine.continuation``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "min_lr": self.min_lr,
            "warmup_steps": self.warmup_steps,
            "weight_decay": self.weight_decay,
            "betas": list(self.betas),
            "eps": self.eps,
            "grad_clip": self.grad_clip,
            "micro_batch_size": self.micro_batch_size,
            "precision": self.precision,
            "compile": self.compile,
            "checkpoint_steps": list(self.checkpoint_steps),
            "log_every": self.log_every,
            **({"continuation": dict(self.continuation)} if self.continuation else {}),
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> TrainingSettings:
        betas = entry["betas"]
        return cls(
            seed=int(entry["seed"]),
            learning_rate=float(entry["learning_rate"]),
            min_lr=float(entry["min_lr"]),
            warmup_steps=int(entry["warmup_steps"]),
            weight_decay=float(entry["weight_decay"]),
            betas=(float(betas[0]), float(betas[1])),
            eps=float(entry["eps"]),
            grad_clip=float(entry["grad_clip"]),
            micro_batch_size=None if entry.get("micro_batch_size") is None else int(entry["micro_batch_size"]),
            precision=entry.get("precision"),
            compile=bool(entry.get("compile", False)),
            checkpoint_steps=tuple(int(s) for s in entry.get("checkpoint_steps", ())),
            log_every=int(entry.get("log_every") or 10),
            continuation=dict(entry["continuation"]) if entry.get("continuation") else None,
        )


def parse_window(window: Any) -> tuple[float, float] | None:
    """A window as ``(start, end)``; plan files spell it ``[start, end]`` (older ones ``{start, end}``)."""
    if window is None:
        return None
    if isinstance(window, Mapping):
        return float(window["start"]), float(window["end"])
    if isinstance(window, Sequence) and not isinstance(window, str) and len(window) == 2:
        return float(window[0]), float(window[1])
    raise ValueError(f"expected a window [start, end] or None, got {window!r}")
