"""``designkit train PLAN --dry-run``: the cluster layout a launch would use, and nothing trained.

It reads the plan (every hash checked), resolves the loop settings exactly as ``train`` does
(``engine.settings.resolve``: the same refusals, one line, exit 2) and estimates the memory
each device needs. It imports no torch, launches no process group and writes nothing, so it
runs on a login node before a job is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from designkit import model_config
from designkit.errors import InputError
from designkit.planning import Plan
from engine import settings

GIB = 1024**3
ACTIVATION_BYTES_PER_HIDDEN = 34
"""Bytes of stored activations per token, layer and hidden unit of a transformer layer in
16-bit precision (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", eq. 1 without its attention-score term 5·a·s/h, which flash attention,
LitGPT's SDPA, never stores)."""
LOGIT_BYTES = 10
"""Bytes per logit: the bf16 logits, their fp32 copy in the cross-entropy and its fp32 gradient."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device, by what holds them."""

    parameters: float
    gradients: float
    adamw: float
    gathered: float
    activations: float
    logits: float
    shard_group: int
    """Processes the parameters, gradients and optimizer states are split over (1: replicated)."""

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.adamw + self.gathered + self.activations + self.logits


def state_bytes_per_parameter(precision: str) -> int:
    """Bytes of one stored parameter (and of its gradient and each AdamW moment): fp32 master
    weights under mixed precision and ``32-true``, 16-bit under ``bf16-true``/``16-true``."""
    if precision == "64-true":
        return 8
    return 2 if precision in ("bf16-true", "16-true") else 4


def compute_bytes(precision: str) -> int:
    """Bytes of an activation: 16-bit except under full fp32 (or fp64)."""
    return {"32-true": 4, "64-true": 8}.get(precision, 2)


def estimate_memory(config: dict, *, strategy: str, devices: int, micro_batch: int, seq_len: int, precision: str) -> MemoryEstimate:
    """Per-device memory of one training step, without activation checkpointing.

    FSDP (``engine.settings.make_fabric``) wraps every ``Block`` and shards within a node
    (``FULL_SHARD`` on one node, ``HYBRID_SHARD`` over several: each node holds one full copy),
    so the shard group is the devices of a node; the root unit (embedding, final norm, head)
    is gathered for the whole step, and two Blocks at a time (the one computing and the one
    prefetched). DDP and ``auto`` replicate everything on every device.
    """
    n_params = model_config.parameter_count(config)
    vocab = config.get("padded_vocab_size") or config["vocab_size"]
    n_embd, n_layer = config["n_embd"], config["n_layer"]
    stored = state_bytes_per_parameter(precision)
    act = compute_bytes(precision)
    group = devices if strategy == "fsdp" else 1
    gathered = 0.0
    if strategy == "fsdp":
        root = 2 * vocab * n_embd
        block = (n_params - root) / max(1, n_layer)
        gathered = (root + 2 * block) * act
    tokens = micro_batch * seq_len
    return MemoryEstimate(
        parameters=n_params * stored / group,
        gradients=n_params * stored / group,
        adamw=2 * n_params * stored / group,
        gathered=gathered,
        activations=ACTIVATION_BYTES_PER_HIDDEN * tokens * n_embd * n_layer * act / 2,
        logits=tokens * vocab * LOGIT_BYTES,
        shard_group=group,
    )


def dry_run(plan_dir: str | Path, *, devices: int | str, num_nodes: int, strategy: str, accelerator: str) -> str:
    """The launch's layout and memory estimate as text; InputError where ``train`` would refuse it."""
    if devices == "auto":
        raise InputError(None, "devices", "expected a number of devices per node for --dry-run ('auto' is decided at launch)")
    devices = settings.parse_devices(devices)
    if strategy not in settings.STRATEGIES:
        raise InputError(None, "strategy", f"expected one of {', '.join(settings.STRATEGIES)}, got {strategy!r}")
    if num_nodes < 1:
        raise InputError(None, "num_nodes", f"expected a positive integer, got {num_nodes}")
    if accelerator not in settings.ACCELERATORS:
        raise InputError(None, "accelerator", f"expected one of {', '.join(settings.ACCELERATORS)}, got {accelerator!r}")
    # a dry run plans a cluster job from any host: 'auto' means the GPUs the job will have
    target = "cpu" if accelerator == "cpu" else "cuda"
    if strategy == "fsdp" and target != "cuda":
        raise InputError(None, "strategy", "expected a CUDA accelerator for fsdp (use ddp on CPU)")
    plan = Plan.open(plan_dir)
    world = devices * num_nodes
    loop = settings.resolve(plan, world, target)
    config = plan.model_info.config
    memory = estimate_memory(config, strategy=strategy, devices=devices,
                             micro_batch=loop.micro_batch_size, seq_len=loop.seq_len, precision=loop.precision)  # fmt: skip
    per_step = loop.global_batch * loop.seq_len
    sharding = {
        "fsdp": f"parameters, gradients and AdamW states sharded over the {devices} devices of a node"
        + (f", replicated over the {num_nodes} nodes (HYBRID_SHARD)" if num_nodes > 1 else " (FULL_SHARD)"),
        "ddp": "every device holds the whole model, its gradients and AdamW states",
        "auto": "Lightning's choice; estimated as replicated (ddp)",
    }[strategy]
    per_forward = world * loop.micro_batch_size
    state_dtype = {8: "fp64", 4: "fp32", 2: "16-bit"}[state_bytes_per_parameter(loop.precision)]
    act_dtype = {8: "fp64", 4: "fp32", 2: "16-bit"}[compute_bytes(loop.precision)]

    def row(label: str, value: float) -> str:
        return f"  {label:<60}{value / GIB:7.2f} GiB"

    lines = [
        f"dry run of plan {plan.meta['name']} ({plan.hash[:16]}): nothing is trained and no run directory is written",
        f"devices: {devices} per node × {num_nodes} node(s) = {world} processes ({target})",
        f"strategy: {strategy}: {sharding}",
        f"precision: {loop.precision}",
        f"model: ≈ {model_config.parameter_count(config) / 1e9:.2f}B parameters, {config['n_layer']} layers, d {config['n_embd']}, vocabulary {config.get('padded_vocab_size') or config['vocab_size']:,}",
        f"micro-batch: {loop.micro_batch_size} sequences of {loop.seq_len} tokens per device per forward pass",
        f"gradient accumulation: {loop.accumulation} micro-batches per optimizer step",
        f"global batch check: {loop.global_batch} sequences = {world} processes × {loop.micro_batch_size} micro-batch "
        f"× {loop.accumulation} accumulation steps ({loop.global_batch} % {per_forward} = 0): ok",
        f"tokens per step: {per_step:,} ({loop.local_batch * loop.seq_len:,} per device); "
        f"{loop.steps:,} steps = {per_step * loop.steps / 1e9:,.1f}B tokens",
        f"memory per device (estimate): {memory.total / GIB:.1f} GiB",
        row(f"parameters ({state_dtype}, over {memory.shard_group})", memory.parameters),
        row(f"gradients ({state_dtype}, over {memory.shard_group})", memory.gradients),
        row(f"AdamW moments (2 × {state_dtype}, over {memory.shard_group})", memory.adamw),
        *([row("gathered for compute (root unit + 2 Blocks, 16-bit)", memory.gathered)] if strategy == "fsdp" else []),
        row(f"activations ({ACTIVATION_BYTES_PER_HIDDEN} bytes × hidden per token and layer, {act_dtype})", memory.activations),
        row(f"logits and loss ({LOGIT_BYTES} bytes per logit)", memory.logits),
        "assumes: no activation checkpointing, flash attention (no stored attention scores), AdamW's two moments "
        "in the parameters' dtype, one micro-batch's activations alive at a time; excludes the CUDA context, "
        "the allocator's fragmentation and communication buffers (allow 10-20% more)",
    ]
    return "\n".join(lines)
