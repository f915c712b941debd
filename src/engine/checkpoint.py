"""Checkpoints in LitGPT layout plus the training state to resume from, written atomically.

``checkpoints/step-XXXXXXXX/`` holds ``lit_model.pth`` (a plain state_dict),
``model_config.yaml`` (``litgpt.utils.save_config``), the tokenizer files, and
``training_state.pt`` (optimizer, step, data position, RNG, controller state). A step
directory is filled under a temporary name and renamed into place, so one that exists is
complete; ``latest_checkpoint`` only ever sees complete ones. Both files are read through
``engine.weights``, which never runs code a pickle may carry.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litgpt.utils import save_config

from designkit import atomic_files
from designkit.data.tokenizer import TOKENIZER_FILES
from designkit.errors import InputError
from designkit.runfile import CHECKPOINTS, MODEL_FILE, STATE_FILE, complete_checkpoints
from designkit.runfile import checkpoint_dir as step_dir
from engine import weights


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


_STATE_KEYS = ("step", "optimizer", "rng", "plan_hash")


def read_training_state(path: Path, plan_hash: str) -> dict[str, Any]:
    """``training_state.pt`` of a checkpoint of this plan, read without running code."""
    state = weights.read_torch_file(path, what="a designkit training state written by torch.save")
    if not isinstance(state, dict) or any(key not in state for key in _STATE_KEYS):
        raise InputError(path, None, f"expected a designkit training state with {', '.join(_STATE_KEYS)}")
    if state["plan_hash"] != plan_hash:
        raise InputError(path, "plan_hash", f"expected a checkpoint of plan {plan_hash[:12]}…, got one of {str(state['plan_hash'])[:12]}…")
    return state


def check_resumable(run_dir: Path, step: int, config, plan_hash: str) -> None:
    """Read (memory-mapped) and check checkpoint ``step`` before a resume writes anything."""
    path = step_dir(run_dir, step)
    weights.read_model_weights(path / MODEL_FILE, config, "the plan")
    read_training_state(path / STATE_FILE, plan_hash)


def load_training_state(fabric, run_dir: Path, step: int, model, optimizer, config, plan_hash: str) -> dict[str, Any]:
    """Load weights and optimizer of checkpoint ``step`` into the set-up model/optimizer; return the rest."""
    path = step_dir(run_dir, step)
    weights.load_weights(fabric, model, weights.read_model_weights(path / MODEL_FILE, config, "the plan"))
    state = read_training_state(path / STATE_FILE, plan_hash)
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
