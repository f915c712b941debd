"""Resolved run settings: the plan's training section plus the launch options, checked once.

``resolve`` is the engine's boundary for everything the loop needs; the loop trusts it.
``make_fabric`` builds the Lightning Fabric for the chosen devices, strategy and precision.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from designkit.errors import InputError, clip, quote

STRATEGIES = ("auto", "ddp", "fsdp")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu")


@dataclass(frozen=True)
class LoopSettings:
    seq_len: int
    """Tokens the model reads per sequence (windows hold seq_len + 1)."""
    global_batch: int
    """Sequences per optimizer step over all processes."""
    steps: int
    """Optimizer steps of the whole run."""
    local_batch: int
    """Sequences per optimizer step on this process (global_batch / world_size)."""
    micro_batch_size: int
    """Sequences per forward pass."""
    accumulation: int
    """Micro-batches per optimizer step (local_batch / micro_batch_size)."""
    learning_rate: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    grad_clip: float
    """Max global gradient norm; 0 disables clipping."""
    precision: str
    """Fabric precision, e.g. ``bf16-mixed`` or ``32-true``."""
    compile: bool
    """Wrap the model in ``torch.compile``."""
    checkpoint_steps: tuple[int, ...]
    """Steps after which a checkpoint is saved (0: the untrained model)."""
    log_every: int
    """Steps between metrics rows."""
    flush_every: int
    """Steps between applied-log chunks (besides every checkpoint)."""
    seed: int
    """Seeds model init, the data order and every other draw of the run."""

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


MIN_FLUSH_STEPS = 100  # applied-log chunks: few files on long runs; checkpoints flush anyway


def resolve(plan, world_size: int, accelerator: str) -> LoopSettings:
    t = plan.training
    file = Path(plan.path) / "plan.json"
    if plan.global_batch % world_size:
        raise InputError(file, "geometry.global_batch", f"expected a global batch divisible by the {world_size} processes, got {plan.global_batch}")
    local_batch = plan.global_batch // world_size
    micro = min(t.micro_batch_size or local_batch, local_batch)
    if local_batch % micro:
        raise InputError(file, "training.micro_batch_size", f"expected a divisor of the per-process batch {local_batch}, got {micro}")
    precision = precision_for(plan, accelerator)
    log_every = max(1, t.log_every)
    return LoopSettings(
        seq_len=plan.seq_len,
        global_batch=plan.global_batch,
        steps=plan.steps,
        local_batch=local_batch,
        micro_batch_size=micro,
        accumulation=local_batch // micro,
        learning_rate=t.learning_rate,
        min_lr=t.min_lr,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        betas=t.betas,
        eps=t.eps,
        grad_clip=t.grad_clip,
        precision=str(precision),
        compile=t.compile,
        checkpoint_steps=tuple(sorted({*(t.checkpoint_steps or (plan.steps,)), plan.steps})),
        log_every=log_every,
        flush_every=max(log_every, MIN_FLUSH_STEPS),
        seed=t.seed,
    )


def precision_for(plan, accelerator: str) -> str:
    """The plan's precision, else bf16 mixed precision on GPU and full fp32 on CPU."""
    return str(plan.training.precision or ("bf16-mixed" if accelerator == "cuda" else "32-true"))


def resolve_accelerator(accelerator: str) -> str:
    import torch

    if accelerator not in ACCELERATORS:
        raise InputError(None, "accelerator", f"expected one of {', '.join(ACCELERATORS)}, got {accelerator!r}")
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise InputError(None, "accelerator", "expected a CUDA device for --accelerator cuda, found none")
        return "cuda"
    return "cpu"


def parse_devices(devices: int | str) -> int | str:
    if devices == "auto":
        return "auto"
    try:
        value = int(devices)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise InputError(None, "devices", f"expected 'auto' or a positive integer, got {devices!r}")
    return value


def make_fabric(*, accelerator: str, devices: int | str, num_nodes: int, strategy: str, precision: str):
    """A Fabric (not yet launched). FSDP wraps each litgpt ``Block``, as ``litgpt pretrain`` does."""
    import lightning as L
    from lightning.fabric.strategies import DDPStrategy, FSDPStrategy
    from litgpt.model import Block

    if strategy not in STRATEGIES:
        raise InputError(None, "strategy", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if num_nodes < 1:
        raise InputError(None, "num_nodes", f"expected a positive integer, got {num_nodes}")
    if strategy == "fsdp":
        if accelerator != "cuda":
            raise InputError(None, "strategy", "expected a CUDA accelerator for fsdp (use ddp on CPU)")
        chosen: Any = FSDPStrategy(
            auto_wrap_policy={Block},
            state_dict_type="full",
            sharding_strategy="HYBRID_SHARD" if num_nodes > 1 else "FULL_SHARD",
        )
    elif strategy == "ddp":
        # gloo on CPU, nccl on GPU: Fabric picks the backend from the accelerator
        chosen = DDPStrategy()
    else:
        chosen = "auto"
    try:
        return L.Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=chosen, precision=precision)
    except (ValueError, RuntimeError, TypeError) as exc:
        reason = clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if "precision" in reason.lower():  # blame the setting at fault, not the devices
            raise InputError(None, "training.precision", f"expected a precision Fabric supports here, got {quote(precision)} ({reason})") from None
        raise InputError(None, "devices", f"expected a launchable device setup ({reason})") from None


@contextlib.contextmanager
def compile_caches_inside(run_dir: Path) -> Iterator[None]:
    """Point torch.compile's (Inductor, Triton) and CUDA's kernel caches into the run dir."""
    cache = Path(run_dir).resolve() / ".cache"
    wanted = {
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
        "TRITON_CACHE_DIR": str(cache / "triton"),
        "CUDA_CACHE_PATH": str(cache / "cuda"),
    }
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
