"""Continuation sub-plans: a short run that continues a parent run from one of its checkpoints.

Interference testing (Bordt & Pawelczyk 2025, continual-pretraining dependence testing)
trains several short runs from one checkpoint of the combined run, each with the data of
a subset of the experiments switched on. A sub-plan is an ordinary PLAN dir (the engine
needs nothing else) that

- keeps the parent's items and arm assignment (same ``item_index``, ``item_id``, ``arm``);
- continues the parent's base-data stream: ``geometry.stream_offset`` is the first parent
  sequence after the checkpoint, so the sub-run's sequence ``g`` reads the parent's base
  window of sequence ``stream_offset + g`` (with the plan's own edits on top);
- starts from the checkpoint's weights and, by default, its optimizer state and LR
  schedule position (``training.continuation``); ``optimizer: fresh`` starts a new AdamW
  with a short warmup up to the parent's schedule instead;
- inserts the treated items of the switched-on experiments only, with doses scaled so each
  experiment's data is ``share`` of the sub-run's tokens (the paper used about 1%). The
  placements of an experiment are the same in every sub-plan that switches it on: they
  come from one joint placement of all experiments.

Everything here reads files only (no torch): the checkpoint's step comes from its
directory name and its plan from the run's ``run.json``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from designkit.errors import InputError
from designkit.planning import budget, placement
from designkit.planning.planfile import Plan, plain_scalar, sha256_file, write_plan
from designkit.runfile import CHECKPOINT_FILES, MODEL_FILE, STATE_FILE

OPTIMIZER_MODES = ("parent", "fresh")
MAX_SUBRUN_INJECTED_FRACTION = 0.5
_STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass(frozen=True)
class ParentCheckpoint:
    """A designkit checkpoint ``RUN/checkpoints/step-XXXXXXXX`` of the parent plan."""

    path: Path
    step: int
    run_dir: Path

    @classmethod
    def open(cls, path: str | Path, parent: Plan) -> ParentCheckpoint:
        from designkit.runfile import RunDir

        path = Path(path).resolve()
        match = _STEP_DIR.match(path.name)
        if not match or path.parent.name != "checkpoints":
            raise InputError(path, None, "expected a designkit checkpoint directory RUN/checkpoints/step-XXXXXXXX")
        missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]  # runfile's complete checkpoint
        if missing:
            raise InputError(path, missing[0], "expected a complete designkit checkpoint (weights, config and training state)")
        run_dir = path.parent.parent
        run = RunDir.open(run_dir)
        if run.plan_hash != parent.hash:
            raise InputError(run_dir / "run.json", "plan_hash", f"expected the parent plan's hash {parent.hash[:12]}…, got {run.plan_hash[:12]}…")
        step = int(match.group(1))
        if step > parent.steps:
            raise InputError(path, None, f"expected a step within the parent's {parent.steps} steps, got {step}")
        return cls(path=path, step=step, run_dir=run_dir)


@dataclass(frozen=True)
class SubRunSpec:
    """What one sub-run switches on and how it continues."""

    name: str
    on: tuple[str, ...]
    """Experiments whose treated items are inserted."""
    replicate: int = 0
    """0 keeps the parent's base-data seed; replicate r > 0 draws the base data with another seed."""


@dataclass(frozen=True)
class ContinuationSettings:
    steps: int
    """Optimizer steps of every sub-run."""
    share: float = 0.01
    """Share of a sub-run's tokens that each switched-on experiment's data takes."""
    optimizer: Literal["parent", "fresh"] = "parent"
    """``parent``: the checkpoint's AdamW state and LR schedule position; ``fresh``: a new AdamW."""
    warmup_steps: int = 0
    """With ``optimizer: fresh``: linear warmup to the parent's schedule over this many steps."""


def replicate_seed(parent_seed: int, replicate: int) -> int:
    """Base-data seed of replicate ``replicate`` (0: the parent's own)."""
    if replicate == 0:
        return int(parent_seed)
    from designkit.planning.planner import derive_rng

    return int(derive_rng(int(parent_seed), "interference-replicate", str(replicate)).integers(0, 2**31 - 1))


def insertable_experiments(parent: Plan) -> list[str]:
    """Experiments with data to switch on: not placebos, with at least one inserted arm."""
    items = parent.items()
    return [e["name"] for e in parent.experiments if not e["placebo"] and items.loc[items["experiment"] == e["name"], "inserted"].any()]


def _footprints(parent: Plan) -> np.ndarray:
    _, index = parent.payload
    return np.diff(np.asarray(index)).astype(np.int64) + 2  # EOS + payload + EOS


def subrun_doses(parent: Plan, settings: ContinuationSettings) -> pd.Series:
    """Sub-run dose of every item (by item_index): the parent's doses scaled to ``share``.

    Each insertable experiment's treated items keep their relative doses (x4 stays a quarter
    of x16, up to rounding, at least 1) and together fill ``share`` of the sub-run's tokens.
    """
    items = parent.items()
    footprint = _footprints(parent)
    total_tokens = settings.steps * parent.global_batch * parent.seq_len
    dose = pd.Series(0, index=items["item_index"].to_numpy(), dtype=np.int64)
    for name in insertable_experiments(parent):
        treated = items[(items["experiment"] == name) & items["inserted"]]
        parent_tokens = float((treated["dose"].to_numpy() * footprint[treated["item_index"].to_numpy()]).sum())
        scale = settings.share * total_tokens / parent_tokens
        dose.loc[treated["item_index"].to_numpy()] = np.maximum(1, np.round(treated["dose"].to_numpy() * scale)).astype(np.int64)
    return dose


def joint_placements(parent: Plan, settings: ContinuationSettings, doses: pd.Series) -> pd.DataFrame:
    """One placement of every insertable experiment's treated items over the sub-run.

    A sub-plan keeps the rows of its switched-on experiments, so an experiment sits at the
    same positions in every sub-run, and any subset of valid placements is valid.
    """
    from designkit.planning.planner import derive_rng

    items = parent.items()
    n_sequences = settings.steps * parent.global_batch
    chosen = doses[doses > 0]
    footprint = _footprints(parent)[chosen.index.to_numpy()]
    request = placement.InsertionRequest(
        item_index=chosen.index.to_numpy().astype(np.int32),
        footprint=footprint,
        dose=chosen.to_numpy(),
        window_lo=np.zeros(len(chosen), dtype=np.int64),
        window_hi=np.full(len(chosen), n_sequences, dtype=np.int64),
    )
    try:
        frame = placement.place_insertions(request, n_sequences=n_sequences, seq_len=parent.seq_len,
                                           rng=derive_rng(int(parent.meta["seed"]), "interference-placement"))  # fmt: skip
    except InputError as exc:
        raise InputError(parent.path / "plan.json", "interference", f"expected the sub-run to hold every experiment's data: {exc.detail} (lower --share or raise --steps)") from None
    frame.insert(4, "payload_index", frame["item_index"].to_numpy(np.int32))  # one payload per item (check_parent)
    frame["edit"] = "insert"
    frame["reserve_seq"] = np.int64(-1)
    # span noise on an insertion (GW) belongs to its item: the parent's seed and std carry over
    parent_rows = parent.placements().drop_duplicates("item_index").set_index("item_index")
    index = frame["item_index"]
    frame["noise_seed"] = index.map(parent_rows["noise_seed"]).fillna(-1).to_numpy(np.int64)
    frame["noise_std"] = index.map(parent_rows["noise_std"]).fillna(0.0).to_numpy(np.float32)
    frame["experiment"] = items["experiment"].to_numpy()[frame["item_index"].to_numpy()]
    return frame


def check_parent(parent: Plan) -> None:
    """Sub-plans re-place insertions only; a parent with other edits cannot be continued yet."""
    edits = set(parent.placements()["edit"].astype(str))
    if edits - {"insert"}:
        raise InputError(parent.path / "placements.parquet", "edit", f"expected insert edits only for interference sub-plans, found {sorted(edits - {'insert'})}")
    if len(parent.payloads()) != len(parent.items()):
        raise InputError(parent.path / "payloads.parquet", None, "expected one payload per item for interference sub-plans (items of several payloads cannot be continued yet)")
    if (parent.reserved()["global_seq"] >= 0).any():
        raise InputError(parent.path / "reserved.parquet", None, "expected no reserve windows tied to run sequences for interference sub-plans")


def write_subplan(
    parent: Plan,
    checkpoint: ParentCheckpoint,
    settings: ContinuationSettings,
    run: SubRunSpec,
    out: Path,
    *,
    doses: pd.Series | None = None,
    joint: pd.DataFrame | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write the sub-plan of ``run`` to ``out`` and return its plan hash.

    ``doses`` and ``joint`` (from ``subrun_doses`` and ``joint_placements``) can be shared by
    the sub-plans of one design; they are computed here when not given.
    """
    if settings.optimizer not in OPTIMIZER_MODES:
        raise InputError(None, "optimizer", f"expected one of {', '.join(OPTIMIZER_MODES)}, got {settings.optimizer!r}")
    check_parent(parent)
    insertable = insertable_experiments(parent)
    unknown = [name for name in run.on if name not in insertable]
    if unknown:
        raise InputError(parent.path / "plan.json", "experiments", f"expected experiments with data to switch on ({', '.join(insertable) or 'none'}), got {unknown[0]!r}")
    doses = subrun_doses(parent, settings) if doses is None else doses
    joint = joint_placements(parent, settings, doses) if joint is None else joint

    items = parent.items().copy()
    on = items["experiment"].isin(run.on).to_numpy()
    sub_dose = doses.reindex(items["item_index"].to_numpy()).fillna(0).to_numpy(np.int64)
    treated = items["inserted"].to_numpy()
    items["inserted"] = treated & on
    # control arms keep dose 0; treated arms carry their sub-run dose whether or not switched on
    items["dose"] = np.where(treated, sub_dose, items["dose"].to_numpy()).astype(np.int32)
    items["window_start"], items["window_end"] = 0.0, 1.0
    placements = joint[joint["experiment"].isin(run.on)].drop(columns="experiment").reset_index(drop=True)

    n_sequences = settings.steps * parent.global_batch
    total_tokens = n_sequences * parent.seq_len
    budget_rows = budget.budget_table(items.assign(footprint=_footprints(parent), edited_sequences=0), total_tokens, n_sequences)
    injected = int(budget_rows["tokens"].sum())
    if injected > MAX_SUBRUN_INJECTED_FRACTION * total_tokens:
        raise InputError(None, "share", f"expected at most {MAX_SUBRUN_INJECTED_FRACTION:.0%} of a sub-run injected, run {run.name} injects {injected / total_tokens:.1%} (lower --share)")

    meta = copy.deepcopy({k: v for k, v in parent.meta.items() if k not in ("files", "format")})
    stream_offset = checkpoint.step * parent.global_batch
    meta["name"] = f"{parent.meta['name']}-{run.name}"
    meta["geometry"] = {
        "seq_len": parent.seq_len,
        "global_batch": parent.global_batch,
        "steps": settings.steps,
        "n_sequences": n_sequences,
        "total_tokens": total_tokens,
        "corpus_epochs": n_sequences / max(1, int(parent.meta["corpus"]["train_tokens"]) // (parent.seq_len + 1)),
        "stream_offset": stream_offset,
    }
    meta["model"] = {
        **meta["model"],
        "checkpoint": str(checkpoint.path),
        "checkpoint_sha256": sha256_file(checkpoint.path / MODEL_FILE),
    }
    training = meta["training"]
    parent_warmup = int(training["warmup_steps"])
    training["seed"] = replicate_seed(int(training["seed"]), run.replicate)
    training["checkpoint_steps"] = [settings.steps]
    training["continuation"] = {
        "optimizer": settings.optimizer,
        "parent_plan_hash": parent.hash,
        "parent_step": checkpoint.step,
        "training_state_sha256": sha256_file(checkpoint.path / STATE_FILE) if settings.optimizer == "parent" else None,
        # the LR of sub-run step s is the parent's schedule at step parent_step + s
        "schedule_start": checkpoint.step,
        "schedule_steps": parent.steps,
        "schedule_warmup_steps": parent_warmup,
        "warmup_steps": int(settings.warmup_steps) if settings.optimizer == "fresh" else 0,
    }
    training["warmup_steps"] = parent_warmup
    for exp in meta["experiments"]:
        rows = items[items["experiment"] == exp["name"]]
        for arm, info in exp["arms"].items():
            arm_rows = rows[rows["arm"] == arm]
            info["inserted"] = bool(arm_rows["inserted"].any())
            info["dose"] = int(arm_rows["dose"].iloc[0]) if len(arm_rows) else int(info["dose"])
            info["window"] = [0.0, 1.0]
    meta["budget"] = {
        "total_tokens": total_tokens,
        "injected_tokens": injected,
        "injected_fraction": injected / total_tokens,
        "max_injected_fraction": MAX_SUBRUN_INJECTED_FRACTION,
        "edited_sequences": 0,
        "edited_sequence_fraction": 0.0,
        "rows": budget_rows.to_dict("records"),
    }
    meta["interference"] = {
        "parent_plan": str(Path(parent.path).resolve()),
        "parent_plan_hash": parent.hash,
        "checkpoint": str(checkpoint.path),
        "parent_step": checkpoint.step,
        "run": run.name,
        "on": list(run.on),
        "replicate": run.replicate,
        "share": settings.share,
        **(extra or {}),
    }
    meta = _plain(meta)
    payloads = parent.payloads().assign(dose=items["dose"].to_numpy(np.int32))  # one payload per item: its dose is the item's
    return write_plan(out, meta, items, payloads, parent.probe_instances(), *parent.payload, placements, parent.reserved(),
                      parent.tokenizer_dir, replace=True)


def _plain(value: Any) -> Any:
    """numpy scalars (from pandas records) as JSON numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return plain_scalar(value)
