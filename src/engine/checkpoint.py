"""Checkpoints in LitGPT layout plus the training state to resume from, written atomically.

``checkpoints/step-XXXXXXXX/`` holds ``lit_model.pth`` (a plain state_dict),
``model_config.yaml`` (``litgpt.utils.save_config``), the tokenizer files, and
``training_state.pt`` (optimizer, step, data position, RNG, controller state). A step
directory is filled under a temporary name and renamed into place, so one that exists is
complete; ``latest_checkpoint`` only ever sees complete ones.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litgpt.utils import load_checkpoint, save_config

from designkit import atomic_files
from designkit.data.tokenizer import TOKENIZER_FILES
from designkit.runfile import CHECKPOINTS, MODEL_FILE, STATE_FILE, complete_checkpoints
from designkit.runfile import checkpoint_dir as step_dir


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints (``designkit.runfile.is_complete_checkpoint``) in a run dir, ascending."""
    return list(complete_checkpoints(run_dir))


def latest_checkpoint(run_dir: Path) -> int | None:
    steps = checkpoint_steps(run_dir)
    return steps[-1] if steps else None


def remove_incomplete(run_dir: Path) -> None:
    """Temporary directories left by a crash during a save."""
    root = Path(run_dir) / CHECKPOINTS
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(".") and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)


def _is_fsdp(fabric) -> bool:
    from lightning.fabric.strategies import FSDPStrategy

    return isinstance(fabric.strategy, FSDPStrategy)


def _full_state(fabric, model, optimizer) -> tuple[dict, dict]:
    """Full (unsharded) model and optimizer state dicts; under FSDP only rank 0's are complete."""
    if _is_fsdp(fabric):
        from lightning.fabric.strategies.fsdp import _get_full_state_dict_context
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        module = model._forward_module
        module = getattr(module, "_orig_mod", module)
        with _get_full_state_dict_context(module, world_size=fabric.world_size):
            return module.state_dict(), FSDP.optim_state_dict(module, optimizer.optimizer)
    return model.state_dict(), optimizer.state_dict()


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {**np_state, "state": {"key": np_state["state"]["key"].tolist(), "pos": int(np_state["state"]["pos"])}},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32), "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)
    random.setstate(state["python"])


def _save(obj: Any, path: Path) -> None:
    torch.save(obj, path)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def save_checkpoint(fabric, run_dir: Path, step: int, model, optimizer, config, tokenizer_dir: Path, training_state: dict[str, Any]) -> Path:
    """Every rank calls this (FSDP gathers the full state); rank 0 writes the directory."""
    model_state, optimizer_state = _full_state(fabric, model, optimizer)
    target = step_dir(run_dir, step)
    if fabric.global_rank == 0:
        with atomic_files.atomic_directory(target, replace=True) as tmp:
            _save(model_state, tmp / MODEL_FILE)
            save_config(config, tmp)
            for name in TOKENIZER_FILES:
                if (tokenizer_dir / name).is_file():
                    shutil.copyfile(tokenizer_dir / name, tmp / name)
            _save({**training_state, "step": step, "optimizer": optimizer_state, "rng": rng_state()}, tmp / STATE_FILE)
    fabric.barrier()
    return target


def load_training_state(fabric, run_dir: Path, step: int, model, optimizer) -> dict[str, Any]:
    """Load weights and optimizer of checkpoint ``step`` into the set-up model/optimizer; return the rest."""
    path = step_dir(run_dir, step)
    load_checkpoint(fabric, model, path / MODEL_FILE, strict=True)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer_state = state.pop("optimizer")
    if _is_fsdp(fabric):
        from lightning.fabric.strategies.fsdp import _get_full_state_dict_context
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        module = model._forward_module
        module = getattr(module, "_orig_mod", module)
        with _get_full_state_dict_context(module, world_size=fabric.world_size, rank0_only=False):
            optimizer_state = FSDP.optim_state_dict_to_load(optim_state_dict=optimizer_state, model=module, optim=optimizer.optimizer)
    optimizer.load_state_dict(optimizer_state)
    set_rng_state(state.pop("rng"))
    return state
