"""The learning-rate schedule: linear warmup, then cosine decay to ``min_lr``.

The schedule of ``litgpt.pretrain.get_lr`` and nanoGPT, as a pure function of the
optimizer step, so a resumed run needs no scheduler state. One difference: warmup counts
from step 0 as ``(step + 1) / warmup_steps``, so the first step trains (litgpt's gives it
learning rate 0).
"""

from __future__ import annotations

import math


def get_lr(step: int, *, learning_rate: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of a ``max_steps``-step run."""
    # 1) linear warmup: step 0 trains at lr/warmup, step warmup-1 at the full rate
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    # 2) past the end (never reached in a run): stay at the floor
    if step >= max_steps:
        return min_lr
    # 3) cosine decay from learning_rate at the end of warmup to min_lr after the last step
    decay_ratio = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)
