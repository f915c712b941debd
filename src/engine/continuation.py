"""Continuing a parent run exactly: its optimizer state and its LR schedule position.

A continuation sub-plan (``designkit.planning.subplan``) names a parent checkpoint in
``model.checkpoint`` and says in ``training.continuation`` how to go on from it:

- ``optimizer: parent`` loads the checkpoint's AdamW state and RNG state, and sub-run step
  ``s`` trains at the parent schedule's learning rate of step ``schedule_start + s``. With
  the stream continuing at ``geometry.stream_offset`` and no experiment switched on, the
  sub-run repeats the parent's later steps bit for bit (tests/engine/test_continuation.py).
- ``optimizer: fresh`` starts a new AdamW; the learning rate ramps linearly over
  ``warmup_steps`` up to the parent's schedule (a new optimizer's first steps are large).

Plans without ``training.continuation`` are untouched: their schedule is the plan's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from designkit.errors import InputError
from engine import checkpoint
from engine.schedule import get_lr


@dataclass(frozen=True)
class Continuation:
    optimizer: str
    """``parent`` or ``fresh``."""
    parent_plan_hash: str
    parent_step: int
    training_state_sha256: str | None
    schedule_start: int
    """Parent step whose learning rate sub-run step 0 trains at."""
    schedule_steps: int
    """The parent's ``max_steps`` (the cosine's end)."""
    schedule_warmup_steps: int
    warmup_steps: int
    """Fresh optimizer only: ramp over this many steps."""

    @classmethod
    def from_plan(cls, plan) -> Continuation | None:
        raw = plan.training.continuation
        if not raw:
            return None
        if not plan.meta["model"].get("checkpoint"):
            raise InputError(Path(plan.path) / "plan.json", "training.continuation", "expected model.checkpoint naming the parent checkpoint")
        return cls(
            optimizer=str(raw["optimizer"]),
            parent_plan_hash=str(raw["parent_plan_hash"]),
            parent_step=int(raw["parent_step"]),
            training_state_sha256=raw.get("training_state_sha256"),
            schedule_start=int(raw["schedule_start"]),
            schedule_steps=int(raw["schedule_steps"]),
            schedule_warmup_steps=int(raw["schedule_warmup_steps"]),
            warmup_steps=int(raw.get("warmup_steps") or 0),
        )


def learning_rate(step: int, loop, continuation: Continuation | None) -> float:
    """LR of sub-run (or ordinary run) step ``step``."""
    if continuation is None:
        return get_lr(step, learning_rate=loop.learning_rate, min_lr=loop.min_lr, warmup_steps=loop.warmup_steps, max_steps=loop.steps)
    lr = get_lr(continuation.schedule_start + step, learning_rate=loop.learning_rate, min_lr=loop.min_lr,
                warmup_steps=continuation.schedule_warmup_steps, max_steps=continuation.schedule_steps)  # fmt: skip
    if continuation.optimizer == "fresh" and step < continuation.warmup_steps:
        lr *= (step + 1) / continuation.warmup_steps
    return lr


def verify_training_state(plan, continuation: Continuation) -> None:
    """The parent's training state must be the one the sub-plan was made from (rank 0, once)."""
    from designkit.planning.planfile import sha256_file

    if continuation.optimizer != "parent" or not continuation.training_state_sha256:
        return
    path = Path(plan.meta["model"]["checkpoint"]) / checkpoint.STATE_FILE
    if not path.is_file() or sha256_file(path) != continuation.training_state_sha256:
        raise InputError(path, None, f"expected sha256 {continuation.training_state_sha256[:12]}… as recorded in the plan (the parent's training state changed)")


def load_parent_state(fabric, plan, continuation: Continuation, model, optimizer, config) -> None:
    """Weights, optimizer and RNG state of the parent checkpoint, into the set-up model and optimizer."""
    path = Path(plan.meta["model"]["checkpoint"])
    state = checkpoint.load_training_state(fabric, path.parent.parent, continuation.parent_step, model, optimizer, config, continuation.parent_plan_hash)
    if int(state["step"]) != continuation.parent_step:
        raise InputError(path / checkpoint.STATE_FILE, "plan_hash", f"expected step {continuation.parent_step} of plan {continuation.parent_plan_hash[:12]}…")
