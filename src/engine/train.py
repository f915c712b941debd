"""Training: carry a PLAN dir out exactly and write a RUN dir (docs/formats.md).

The call chain is plain, as in ``litgpt pretrain``: ``train`` (checks, Fabric, launch,
run dir) → ``main`` (model, optimizer, resume) → ``fit`` (the loop). The loop reads like
nanoGPT's: injection happens in the data stream (``engine.stream``), which hands the loop
finished batches, so nothing in the loop knows about experiments.

Multi-process launches: Fabric's subprocess launcher re-runs the current command line
(``sys.argv``) for ranks 1..N-1, so a CLI that simply calls ``train(...)`` works as is;
under torchrun or SLURM every process calls ``train(...)`` itself. Every process returns
a ``TrainSummary``; print it where ``summary.global_rank == 0``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from designkit.planning.planfile import Plan
from designkit.runfile import MODEL_CONFIG_FILE
from engine import applied_log, checkpoint, continuation, rundir, settings, weights
from engine.applied_log import AppliedLog, AppliedLogMismatch
from engine.control import ControlledRun
from engine.inloop import InloopEvaluator
from engine.metrics import MetricsCSV, Progress, make_logger
from engine.model import build_model, embedding_noise, plan_config, verify_checkpoint_weights
from engine.stream import InjectingStream, PlanEdits, Prefetcher, StepBatch


@dataclass(frozen=True)
class TrainSummary:
    run_dir: Path
    plan_hash: str
    global_rank: int
    world_size: int
    steps: int
    """Optimizer steps of the whole run (all done when train returns)."""
    resumed_from: int | None
    """Checkpoint step this invocation started from, or None for a fresh run."""
    tokens: int
    """Tokens trained by this invocation, all processes."""
    train_seconds: float
    """Wall time of this invocation's training loop (checkpoints included, setup excluded)."""
    tokens_per_s: float
    final_loss: float | None
    applied_edits: int

    def __str__(self) -> str:
        loss = f"{self.final_loss:.4f}" if self.final_loss is not None else "n/a"
        start = f", resumed from step {self.resumed_from}" if self.resumed_from is not None else ""
        return (
            f"trained {self.steps} steps{start}: final loss {loss}, {self.tokens_per_s:,.0f} tokens/s, "
            f"{self.applied_edits} edits applied and checked against the plan → {self.run_dir}"
        )


def train(
    plan_dir: str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    logger: str | None = None,
    corpus: str | Path | None = None,
    show_progress: bool = True,
) -> TrainSummary:
    """Train the plan at ``plan_dir`` into ``run_dir``. Bad input raises ``InputError``.

    ``corpus`` reads the corpus from another directory than the plan's (a plan made on a
    laptop, trained on a cluster); it is accepted only if its fingerprint matches. A resumed
    run keeps the corpus directory it recorded unless ``corpus`` is given.
    """
    plan = Plan.open(plan_dir)  # verifies every hash
    run_dir = Path(run_dir).resolve()
    if corpus is None and resume:
        corpus = rundir.recorded_corpus(run_dir)
    if corpus is not None:
        plan.use_corpus(corpus)
    accelerator = settings.resolve_accelerator(accelerator)
    devices = settings.parse_devices(devices)
    precision = settings.precision_for(plan, accelerator)
    fabric = settings.make_fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision)
    loop = settings.resolve(plan, fabric.world_size, accelerator)
    edits = PlanEdits.from_plan(plan)
    config = plan_config(plan)
    mode = rundir.check(run_dir, plan.hash, resume=resume, force=force) if fabric.global_rank == 0 else None
    if fabric.global_rank == 0:
        plan.corpus()  # every token against the plan's fingerprint, once, not on every rank
        check_starting_weights(plan, config, run_dir, mode)  # once, not on every rank: a checkpoint can be many GB
    run_logger = make_logger(logger, run_dir, run_dir.name) if fabric.global_rank == 0 else None

    created = not run_dir.exists()
    with settings.compile_caches_inside(run_dir):
        fabric.launch()
        if accelerator == "cpu" and fabric.world_size > 1:
            # the processes of a node share its cores; oversubscribed threads slow every rank
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, fabric.world_size // num_nodes)))
        mode = fabric.broadcast(mode)
        resume_step = checkpoint.latest_checkpoint(run_dir) if mode == "resume" and fabric.global_rank == 0 else None
        resume_step = fabric.broadcast(resume_step)
        if fabric.global_rank == 0:
            run_settings = {
                "devices": devices,
                "num_nodes": num_nodes,
                "world_size": fabric.world_size,
                "strategy": strategy,
                "accelerator": accelerator,
                "precision": loop.precision,
                "micro_batch_size": loop.micro_batch_size,
                "compile": loop.compile,
                "corpus_path": str(plan.corpus_path) if plan.corpus_path is not None else None,
            }
            rundir.initialize(run_dir, mode, plan, run_settings, resume_step)
            if run_logger is not None:
                run_logger.log_hyperparams({"plan_hash": plan.hash, "plan_path": str(plan.path), **run_settings, **loop.to_json()})
            checkpoint.remove_incomplete(run_dir)
            applied_log.truncate(run_dir, resume_step or 0)
        fabric.barrier()
        try:
            return main(fabric, plan, config, edits, loop, run_dir, resume_step, run_logger, show_progress and fabric.global_rank == 0)
        except BaseException:
            if fabric.global_rank == 0 and mode == "fresh":
                # a retry must not meet a run dir that holds nothing to resume from
                rundir.discard_unstarted(run_dir, created=created)
            raise


def check_starting_weights(plan: Plan, config, run_dir: Path, mode: rundir.Mode) -> None:
    """Read and check the weights training starts from before anything is written (rank 0).

    The files are memory-mapped, so this costs little even for a large checkpoint; a file
    that is broken, of another model, or carries pickled code is refused here, with the run
    dir as it was.
    """
    step = checkpoint.latest_checkpoint(run_dir) if mode == "resume" else None
    if step is not None:
        checkpoint.check_resumable(run_dir, step, config, plan.hash)
    elif plan.meta["model"].get("checkpoint"):
        verify_checkpoint_weights(plan)
        source = Path(plan.meta["model"]["checkpoint"])
        weights.read_model_weights(source / checkpoint.MODEL_FILE, config, source / MODEL_CONFIG_FILE)
        if (cont := continuation.Continuation.from_plan(plan)) is not None:
            continuation.verify_training_state(plan, cont)
            if cont.optimizer == "parent":
                checkpoint.read_training_state(source / checkpoint.STATE_FILE, cont.parent_plan_hash)


def main(fabric, plan: Plan, config, edits: PlanEdits, loop: settings.LoopSettings, run_dir: Path, resume_step: int | None,
         run_logger, show_progress: bool) -> TrainSummary:  # fmt: skip
    from lightning.fabric.strategies import FSDPStrategy

    model = build_model(fabric, config, loop.seq_len, loop.seed, sharded=isinstance(fabric.strategy, FSDPStrategy))
    if loop.compile:
        model = torch.compile(model)
    model = fabric.setup(model)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=loop.learning_rate,
        weight_decay=loop.weight_decay,
        betas=loop.betas,
        eps=loop.eps,
        fused=fabric.device.type == "cuda",
    )
    optimizer = fabric.setup_optimizers(optimizer)

    start_step, controller_state = 0, None
    if resume_step is not None:
        state = checkpoint.load_training_state(fabric, run_dir, resume_step, model, optimizer, config, plan.hash)
        start_step, controller_state = int(state["step"]), state.get("controller")
    elif (cont := continuation.Continuation.from_plan(plan)) is not None and cont.optimizer == "parent":
        continuation.load_parent_state(fabric, plan, cont, model, optimizer, config)  # a sub-run continuing its parent exactly
    elif plan.meta["model"].get("checkpoint"):
        # continual pretraining: the checkpoint's weights, a fresh optimizer
        source = Path(plan.meta["model"]["checkpoint"])
        weights.load_weights(fabric, model, weights.read_model_weights(source / checkpoint.MODEL_FILE, config, source / MODEL_CONFIG_FILE))

    stream = InjectingStream.from_plan(plan, rank=fabric.global_rank, world_size=fabric.world_size, edits=edits)
    return fit(fabric, model, optimizer, config, stream, plan, loop, run_dir, start_step, resume_step, run_logger, show_progress,
               controller_state)  # fmt: skip


def fit(fabric, model, optimizer, config, stream: InjectingStream, plan: Plan, loop: settings.LoopSettings, run_dir: Path,
        start_step: int, resume_step: int | None, run_logger, show_progress: bool, controller_state=None) -> TrainSummary:  # fmt: skip
    rank0 = fabric.global_rank == 0
    log = AppliedLog(run_dir, stream.edits, fabric.global_rank)
    metrics = MetricsCSV(run_dir, resume_step=start_step) if rank0 else None
    progress = Progress(show_progress, total=loop.steps, initial=start_step)
    state = {"plan_hash": plan.hash, "world_size": fabric.world_size, "controller": None}
    cont = continuation.Continuation.from_plan(plan)
    inloop = InloopEvaluator.from_plan(plan, run_dir, write=rank0, resume_step=start_step,
                                       sequence=lambda g: stream.sequences(g, g + 1)[0][0])  # fmt: skip
    control = ControlledRun.from_plan(plan, stream, run_dir, write=rank0)
    if control is not None:
        control.load_state_dict(controller_state if resume_step is not None else None, start_step)

    def save(step: int) -> None:
        log.flush()  # a complete checkpoint implies the applied log up to it is on disk
        state["controller"] = control.state_dict() if control is not None else None
        checkpoint.save_checkpoint(fabric, run_dir, step, model, optimizer, config, plan.tokenizer_dir,
                                   {**state, "global_seq": step * loop.global_batch})  # fmt: skip

    def evaluate_and_control(done: int) -> None:
        """The loop's one hook: in-loop probes after ``done`` steps, then the controllers' decisions for the next interval."""
        rows = inloop.evaluate(model, done, fabric.device) if inloop is not None else None
        if control is not None:
            control.boundary(fabric, done, rows, loop.steps)

    if resume_step is None:
        evaluate_and_control(start_step)  # the untrained model's probes decide the first interval
    if start_step == 0 and 0 in loop.checkpoint_steps:
        save(0)  # the untrained model: the baseline of effects over training

    def to_device(batch: StepBatch) -> StepBatch:
        batch.tensor = torch.from_numpy(batch.tokens)
        if fabric.device.type == "cuda":
            batch.tensor = batch.tensor.pin_memory()  # lets the copy below overlap with compute
        return batch

    model.train()
    batches = Prefetcher(stream, range(start_step, loop.steps), to_device, ready=control.ready if control is not None else None)
    loss_sum = torch.zeros((), device=fabric.device)
    window_start, window_steps = start_step, 0
    final_loss = None
    t_start = t_window = time.perf_counter()
    try:
        for batch in batches:
            step = batch.step
            lr = continuation.learning_rate(step, loop, cont)
            for group in optimizer.param_groups:
                group["lr"] = lr
            trained = batch.tensor.to(fabric.device, non_blocking=True)
            inputs, targets = trained[:, :-1].contiguous(), trained[:, 1:].contiguous()

            for micro in range(loop.accumulation):
                rows = slice(micro * loop.micro_batch_size, (micro + 1) * loop.micro_batch_size)
                noisy = (batch.noise_rows >= rows.start) & (batch.noise_rows < rows.stop)
                with fabric.no_backward_sync(model, enabled=micro < loop.accumulation - 1):
                    with embedding_noise(model, batch.noise_rows[noisy] - rows.start, batch.noise_seeds[noisy], batch.noise_stds[noisy],
                                         batch.noise_offsets[noisy], batch.noise_lengths[noisy]):  # fmt: skip
                        logits = model(inputs[rows])
                    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets[rows].flatten())
                    fabric.backward(loss / loop.accumulation)
                loss_sum += loss.detach()

            if loop.grad_clip > 0:
                fabric.clip_gradients(model, optimizer, max_norm=loop.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # provenance reads back the trained rows (on an accelerator, the host tensor they were copied from: no sync per step)
            log.record(batch, (trained if trained.device.type == "cpu" else batch.tensor).numpy())
            done, window_steps = step + 1, window_steps + 1
            evaluate_and_control(done)

            row = None
            if done % loop.log_every == 0 or done == loop.steps:
                mean_loss = fabric.all_reduce(loss_sum / (window_steps * loop.accumulation), reduce_op="mean").item()
                now = time.perf_counter()
                tokens = window_steps * loop.global_batch * loop.seq_len
                row = {
                    "step": done,
                    "tokens": done * loop.global_batch * loop.seq_len,
                    "loss": mean_loss,
                    "lr": lr,
                    "tokens_per_s": tokens / (now - t_window),
                    "injected_share": stream.injected_tokens(window_start, done) / tokens,
                }
                final_loss = mean_loss
                if rank0:
                    metrics.write(row)
                    if run_logger is not None:
                        run_logger.log_metrics({k: v for k, v in row.items() if k != "step"}, step=done)
                loss_sum.zero_()
                window_start, window_steps, t_window = done, 0, now
            if done in loop.checkpoint_steps:
                save(done)
            elif done % loop.flush_every == 0:
                log.flush()
            progress.update(row and row["loss"], row and row["tokens_per_s"])
        log.flush()
        if fabric.device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds = time.perf_counter() - t_start
    finally:
        batches.close()
        progress.close()
        if metrics is not None:
            metrics.close()
    fabric.barrier()

    # provenance: merge the chunks and check them against the plan; every rank fails alike
    error, n_applied = None, 0
    if rank0:
        try:
            n_applied = applied_log.finalize(run_dir, plan)[0].num_rows
        except AppliedLogMismatch as exc:
            error = str(exc)
        if run_logger is not None:
            run_logger.finalize("success" if error is None else "failed")
    error, n_applied = fabric.broadcast((error, n_applied))
    if error is not None:
        raise AppliedLogMismatch(error)
    tokens = (loop.steps - start_step) * loop.global_batch * loop.seq_len
    return TrainSummary(
        run_dir=run_dir,
        plan_hash=plan.hash,
        global_rank=fabric.global_rank,
        world_size=fabric.world_size,
        steps=loop.steps,
        resumed_from=resume_step,
        tokens=tokens,
        train_seconds=train_seconds,
        tokens_per_s=tokens / train_seconds if train_seconds > 0 else 0.0,
        final_loss=final_loss,
        applied_edits=n_applied,
    )
