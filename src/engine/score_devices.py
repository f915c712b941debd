"""``designkit score RUN --devices N``: the checkpoints' (item, probe) pairs split over N processes.

A thin layer around ``engine.score``: the plan's pairs are cut into the same fixed blocks
one device scores (``engine.score.pair_blocks``), process ``r`` scores blocks ``r, r + N,
…`` with its own copy of the checkpoint, and rank 0 gathers the blocks, puts them back in
plan order and writes the scores file. Each block is batched exactly as on one device, so
the rows are identical to the one-device run, value for value.

Processes come from Lightning Fabric (DDP: gloo on CPU, NCCL on GPU). As in ``train``,
Fabric's subprocess launcher re-runs the command line for ranks 1..N-1; under torchrun or
SLURM every process calls ``score_run`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from designkit.errors import InputError
from designkit.runfile import RunDir
from engine import settings
from engine.probes import DEFAULT_BATCH_TOKENS
from engine.score import (
    BLOCK_PAIRS,
    _check_block_size,
    _score_rows,
    checkpoints_to_score,
    load_checkpoint,
    pair_blocks,
    plan_probes,
    score_block_rows,
    write_scores,
)


def _accelerator(device: str | torch.device) -> str:
    """``--device`` for a multi-process run: a device type, since each process takes its own device."""
    name = str(device)
    if name in ("auto", "cpu", "cuda", "gpu"):
        return settings.resolve_accelerator(name)
    raise InputError(None, "--device", f"expected auto, cpu or cuda with --devices N (each process takes its own device), got {name!r}")


def _gather_to_rank0(fabric, mine: dict[tuple[int, int], list[dict[str, Any]]]) -> dict[tuple[int, int], list[dict[str, Any]]] | None:
    """Every process's scored blocks, on rank 0 (None elsewhere). Objects between our own processes only."""
    if fabric.world_size == 1:
        return mine
    import torch.distributed as dist

    parts: list[Any] | None = [None] * fabric.world_size if fabric.global_rank == 0 else None
    dist.gather_object(mine, parts, dst=0)
    if parts is None:
        return None
    return {block: rows for part in parts for block, rows in part.items()}


def score_run_on_devices(
    run_dir: Path,
    *,
    devices: int,
    device: str | torch.device = "auto",
    steps: Iterable[int] | None = None,
    force: bool = False,
    show_progress: bool = True,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    block_pairs: int = BLOCK_PAIRS,
) -> list[Path] | None:
    """``engine.score.score_run`` over ``devices`` processes; the written files on rank 0, None elsewhere."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise InputError(None, "--devices", f"expected a positive integer, got {devices!r}")
    accelerator = _accelerator(device)
    run = RunDir.open(run_dir)  # every check that reads files happens before any process is launched
    plan = run.plan()
    todo = checkpoints_to_score(run, steps, force)
    probes = plan_probes(plan)
    blocks = pair_blocks(len(probes.jobs), block_pairs)
    fabric = settings.make_fabric(accelerator=accelerator, devices=devices, num_nodes=1, strategy="ddp", precision="32-true")
    fabric.launch()
    if accelerator == "cpu":
        # the processes share the machine's cores; oversubscribed threads slow every one
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // fabric.world_size))
    todo = fabric.broadcast(todo)  # rank 0's view of which scores exist decides for all
    rank0 = fabric.global_rank == 0
    mine = blocks[fabric.global_rank :: fabric.world_size]
    eos_id = int(plan.meta["corpus"]["eos_id"])
    progress = None
    if show_progress and rank0 and todo:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(todo), desc=f"scoring checkpoints on {fabric.world_size} processes", unit="ckpt")
    written = []
    try:
        for step, directory in todo.items():
            model = load_checkpoint(directory, device=fabric.device)
            _check_block_size(probes, model, directory)  # the same verdict on every process
            scored = _gather_to_rank0(fabric, score_block_rows(model, probes, mine, eos_id=eos_id, batch_tokens=batch_tokens))
            del model
            if rank0:
                rows = [row for block in blocks for row in scored[block]]
                written.append(write_scores(run.path, step, _score_rows(probes, rows, step), probes.schema))
                if progress is not None:
                    progress.update(1)
            fabric.barrier()
    finally:
        if progress is not None:
            progress.close()
    return written if rank0 else None
