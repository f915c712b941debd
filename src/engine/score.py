"""Score a run's checkpoints: every probe of every experiment on every item.

``score_checkpoint`` gives the long table of docs/formats.md ("RUN dir", ``scores/``): one
row per probe instance and probe, keyed by ``item_index, item_id, instance, experiment, probe, step``, then
the columns of the probe types the plan uses (``designkit.probes.scores_schema``; null
where a column belongs to another probe type). ``score_run`` writes it as
``RUN/scores/step-XXXXXXXX.parquet`` for each checkpoint.

The probe types themselves (their fields, requests and columns) live in
``designkit.probes``; this module resolves them against the plan once and hands the model
computations to ``engine.probes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from designkit.atomic_files import atomic_path
from designkit.errors import InputError
from designkit.planning.planfile import PLAN_FILE, Plan
from designkit.probes import PlanProbes, ProbeContext
from designkit.probes import plan_probes as resolve_plan_probes
from designkit.runfile import SCORE_KEY_COLUMNS as KEY_COLUMNS
from designkit.runfile import MODEL_CONFIG_FILE, MODEL_FILE, RunDir, scores_file
from engine import weights
from engine.model import checkpoint_model_config
from engine.probes import DEFAULT_BATCH_TOKENS, required_context, score_probes


def plan_probes(plan: Plan) -> PlanProbes:
    """Every (item, probe) pair of ``plan``, checked against items.parquet (InputError naming plan.json).

    A probe that reads corpus windows by global sequence gets them from the plan's own
    training stream, built on first use only.
    """
    stream = None

    def sequence(global_seq: int) -> np.ndarray:
        nonlocal stream
        if stream is None:
            from engine.stream import InjectingStream

            stream = InjectingStream.from_plan(plan)
        return stream.sequences(global_seq, global_seq + 1)[0][0]

    from designkit.data.tokenizer import lazy_decoder

    context = ProbeContext(int(plan.meta["corpus"]["eos_id"]), sequence, lazy_decoder(plan.tokenizer_dir))
    return resolve_plan_probes(plan.experiment_specs, plan.probe_rows(), context, file=plan.path / PLAN_FILE)


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for ``--device`` (auto, cpu, cuda, cuda:N, …); InputError if there is no such device here."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(None, "--device", f"expected auto, cpu, cuda or cuda:N, got {str(device)[:80]!r}") from None
    if resolved.type == "cuda" and (not torch.cuda.is_available() or (resolved.index or 0) >= torch.cuda.device_count()):
        raise InputError(None, "--device", f"expected a CUDA device this machine has ({torch.cuda.device_count()}), got {str(device)!r}")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise InputError(None, "--device", f"expected auto, cpu, cuda or cuda:N, got {str(device)!r}")
    return resolved


def load_checkpoint(checkpoint_dir: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """A ``litgpt.model.GPT`` in eval mode from ``lit_model.pth`` + ``model_config.yaml``.

    Both are read as data only (``engine.weights``, ``designkit.yaml_files``): a checkpoint
    from someone else cannot run code here.
    """
    from litgpt.model import GPT

    checkpoint_dir = Path(checkpoint_dir)
    for name in (MODEL_CONFIG_FILE, MODEL_FILE):
        if not (checkpoint_dir / name).is_file():
            raise InputError(checkpoint_dir, name, f"expected a LitGPT checkpoint directory ({MODEL_FILE} + {MODEL_CONFIG_FILE})")
    device = resolve_device(device)
    config = checkpoint_model_config(checkpoint_dir)
    state = weights.read_model_weights(checkpoint_dir / MODEL_FILE, config, checkpoint_dir / MODEL_CONFIG_FILE)
    with torch.device(device):
        model = GPT(config)
    model.load_state_dict(state)
    return model.to(dtype=dtype).eval()


def scores_frame(table: pa.Table) -> pd.DataFrame:
    """The pandas view of a scores table: nullable ints and bools, NaN floats, lists as arrays."""
    mapping = {pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=mapping.get)
    frame["item_index"] = frame["item_index"].astype(np.int32)
    frame["instance"] = frame["instance"].astype(np.int32)
    frame["step"] = frame["step"].astype(np.int64)
    return frame


def scores_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    return table.replace_schema_metadata(None)


def _score_rows(plan_probes_: PlanProbes, rows: list[dict[str, Any]], step: int) -> pd.DataFrame:
    schema = plan_probes_.schema
    columns: dict[str, list[Any]] = {name: [] for name in schema.names if name not in KEY_COLUMNS}
    for row in rows:
        for name, values in columns.items():
            value = row.get(name)
            values.append(None if value is None or (isinstance(value, float) and math.isnan(value)) else value)
    keys = plan_probes_.keys
    data = {
        "item_index": pa.array(keys["item_index"].to_numpy(), pa.int32()),
        "item_id": pa.array(keys["item_id"].tolist(), pa.string()),
        "instance": pa.array(keys["instance"].to_numpy(), pa.int32()),
        "experiment": pa.array(keys["experiment"].tolist(), pa.string()),
        "probe": pa.array(keys["probe"].tolist(), pa.string()),
        "step": pa.array(np.full(len(keys), step, dtype=np.int64), pa.int64()),
    }
    for name, values in columns.items():
        field = schema.field(name)
        if pa.types.is_floating(field.type):
            # floats keep NaN as NaN (not null): "does not apply" and "undefined" read alike
            values = [math.nan if v is None else float(v) for v in values]
        data[name] = pa.array(values, field.type)
    return scores_frame(pa.Table.from_pydict(data, schema=schema))


def _check_block_size(probes: PlanProbes, model, checkpoint_dir: Path) -> None:
    limit = model.max_seq_length
    for (item_id, probe), job in zip(probes.keys[["item_id", "probe"]].itertuples(index=False), probes.jobs):
        needed = required_context(job)
        if needed > limit:
            raise InputError(
                checkpoint_dir / MODEL_CONFIG_FILE,
                "block_size",
                f"expected at least {needed} tokens to score {item_id} with probe {probe!r}, got {limit}",
            )


BLOCK_PAIRS = 2048
"""(item, probe) pairs per call of ``score_probes``. Which pairs share a padded batch moves
the last bits of their scores, so a checkpoint is scored as fixed blocks of the plan's pairs,
each batched on its own: ``score --devices N`` hands whole blocks to each process, and its
rows equal one device's bit for bit."""


def pair_blocks(n_pairs: int, block_pairs: int = BLOCK_PAIRS) -> list[tuple[int, int]]:
    """``[start, stop)`` of each block of ``block_pairs`` consecutive (item, probe) pairs, in plan order."""
    if block_pairs < 1:
        raise InputError(None, "--block-pairs", f"expected a positive integer, got {block_pairs}")
    return [(start, min(start + block_pairs, n_pairs)) for start in range(0, n_pairs, block_pairs)]


def score_block_rows(model, probes: PlanProbes, blocks: Iterable[tuple[int, int]], *, eos_id: int,
                     batch_tokens: int = DEFAULT_BATCH_TOKENS) -> dict[tuple[int, int], list[dict[str, Any]]]:  # fmt: skip
    """The probe columns of every pair of ``blocks``, each block batched on its own."""
    return {(start, stop): score_probes(model, probes.jobs[start:stop], eos_id=eos_id, batch_tokens=batch_tokens) for start, stop in blocks}


def score_checkpoint(
    plan: Plan,
    checkpoint_dir: str | Path,
    *,
    step: int,
    device: str | torch.device = "cpu",
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    dtype: torch.dtype = torch.float32,
    probes: PlanProbes | None = None,
    block_pairs: int = BLOCK_PAIRS,
) -> pd.DataFrame:
    """Every probe of every experiment of ``plan`` on one checkpoint, as the long scores table.

    Deterministic on a given device: batches depend only on the plan, ``block_pairs`` and
    ``batch_tokens``. ``probes`` lets ``score_run`` resolve the plan once for all checkpoints.
    """
    checkpoint_dir = Path(checkpoint_dir)
    probes = plan_probes(plan) if probes is None else probes
    blocks = pair_blocks(len(probes.jobs), block_pairs)
    model = load_checkpoint(checkpoint_dir, device=device, dtype=dtype)
    _check_block_size(probes, model, checkpoint_dir)
    scored = score_block_rows(model, probes, blocks, eos_id=int(plan.meta["corpus"]["eos_id"]), batch_tokens=batch_tokens)
    return _score_rows(probes, [row for block in blocks for row in scored[block]], step)


scores_path = scores_file


def checkpoints_to_score(run: RunDir, steps: Iterable[int] | None, force: bool) -> dict[int, Path]:
    """``{step: checkpoint dir}`` of the checkpoints to score: ``steps`` (default all) lacking scores, or all with ``force``."""
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise InputError(run.path, "checkpoints", "expected at least one checkpoints/step-XXXXXXXX/lit_model.pth (train first)")
    if steps is not None:
        wanted = sorted({int(s) for s in steps})
        missing = [s for s in wanted if s not in checkpoints]
        if missing:
            raise InputError(run.path, "checkpoints", f"expected checkpoints for steps {missing}, found steps {list(checkpoints)}")
        checkpoints = {s: checkpoints[s] for s in wanted}
    return {s: d for s, d in checkpoints.items() if force or not scores_path(run.path, s).is_file()}


def write_scores(run_dir: Path, step: int, frame: pd.DataFrame, schema: pa.Schema) -> Path:
    target = scores_path(run_dir, step)
    with atomic_path(target) as tmp:
        pq.write_table(scores_table(frame, schema), tmp, compression="zstd")
    return target


def score_run(
    run_dir: str | Path,
    *,
    steps: Iterable[int] | None = None,
    force: bool = False,
    device: str | torch.device = "auto",
    devices: int = 1,
    show_progress: bool = True,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    block_pairs: int = BLOCK_PAIRS,
) -> list[Path] | None:
    """Write ``RUN/scores/step-XXXXXXXX.parquet`` for each checkpoint that lacks it (all with ``force``).

    ``steps`` restricts scoring to those checkpoints (default: all). Returns the files
    written by this call, by step. Each file is written atomically. ``devices`` > 1 splits
    the pairs over that many processes (``engine.score_devices``); there the processes
    other than rank 0 return None.
    """
    run_dir = Path(run_dir)
    if devices != 1:
        from engine.score_devices import score_run_on_devices

        return score_run_on_devices(run_dir, devices=devices, device=device, steps=steps, force=force, show_progress=show_progress,
                                    batch_tokens=batch_tokens, block_pairs=block_pairs)  # fmt: skip
    device = resolve_device(device)  # a bad --device is refused before any file is read
    run = RunDir.open(run_dir)
    plan = run.plan()
    todo = checkpoints_to_score(run, steps, force)
    if not todo:
        return []
    probes = plan_probes(plan)
    pair_blocks(len(probes.jobs), block_pairs)  # a bad --block-pairs is refused before any model is loaded
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(todo), desc="scoring checkpoints", unit="ckpt")
    written = []
    try:
        for step, directory in todo.items():
            frame = score_checkpoint(plan, directory, step=step, device=device, batch_tokens=batch_tokens, probes=probes, block_pairs=block_pairs)
            written.append(write_scores(run_dir, step, frame, probes.schema))
            if progress is not None:
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()
    return written
