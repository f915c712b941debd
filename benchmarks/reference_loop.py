"""A plain training loop equivalent to ``litgpt pretrain``'s ``fit``, as the throughput reference.

Why not the real ``litgpt pretrain`` CLI: in litgpt 0.5.13 it calls ``torch.compile``
unconditionally (there is no ``--compile false``) and its data modules need ``litdata``,
which is not installed offline. So this is litgpt's loop without its data loader,
validation and throughput monitor: ``litgpt.pretrain.initialize_weights``,
``litgpt.pretrain.get_lr``, the same AdamW, forward, cross entropy, backward, gradient
clipping and step, over the same base windows as the engine (tokens gathered before the
clock starts, no injection machinery at all). Cross entropy is computed unchunked, as the
engine does (litgpt chunks it by 128 rows; the value is the same).
"""

from __future__ import annotations

import time

import numpy as np
import torch


def reference_run(plan_dir, *, accelerator: str, precision: str, skip_steps: int, compile: bool = False) -> dict:
    """Train the plan's model on the plan's base windows; tokens/s over steps ``[skip_steps, steps)``."""
    import lightning as L
    from litgpt.config import Config
    from litgpt.model import GPT
    from litgpt.pretrain import get_lr, initialize_weights

    from designkit.planning.planfile import Plan
    from engine.stream import InjectingStream

    plan = Plan.open(plan_dir)
    t = plan.meta["training"]
    fabric = L.Fabric(accelerator=accelerator, devices=1, precision=precision)
    fabric.seed_everything(int(t["seed"]), verbose=False)
    config = Config(**plan.meta["model"]["config"])
    with fabric.init_module(empty_init=True):
        model = GPT(config)
    initialize_weights(fabric, model, n_layer=config.n_layer, n_embd=config.n_embd)
    model.max_seq_length = plan.seq_len
    if compile:
        model = torch.compile(model)
    model = fabric.setup(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t["learning_rate"], weight_decay=t["weight_decay"], betas=tuple(t["betas"]),
                                  eps=t["eps"], fused=fabric.device.type == "cuda")  # fmt: skip
    optimizer = fabric.setup_optimizers(optimizer)

    # the engine's base order, without its edits, gathered before the clock starts
    stream = InjectingStream.from_plan(plan, edits=_no_edits())
    data = stream._gather(stream.windows(np.arange(plan.n_sequences)) * stream.window)
    data = torch.from_numpy(data).view(plan.steps, plan.global_batch, -1)
    micro = int(t.get("micro_batch_size") or plan.global_batch)
    accumulation = plan.global_batch // micro

    model.train()
    marks = []
    for step in range(plan.steps):
        lr = get_lr(t["learning_rate"], step, t["warmup_steps"], plan.steps, t["min_lr"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data[step].to(fabric.device, non_blocking=True)
        for i in range(accumulation):
            rows = batch[i * micro : (i + 1) * micro]
            input_ids, targets = rows[:, :-1], rows[:, 1:]
            with fabric.no_backward_sync(model, enabled=i < accumulation - 1):
                logits = model(input_ids)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
                fabric.backward(loss / accumulation)
        fabric.clip_gradients(model, optimizer, max_norm=t["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step + 1 == skip_steps or step + 1 == plan.steps:
            loss.item()  # synchronize, as the engine's metrics row does
            marks.append(time.perf_counter())
    tokens = (plan.steps - skip_steps) * plan.global_batch * plan.seq_len
    return {"tokens_per_s": tokens / (marks[-1] - marks[0]), "final_loss": float(loss.detach())}


def _no_edits():
    from engine.stream import PlanEdits

    return PlanEdits.empty()
