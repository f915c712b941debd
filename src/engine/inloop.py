"""In-loop evaluation: the experiments' probes on the model being trained, every few steps.

An experiment asks for it with ``inloop_every`` (its kind decides; a controlled experiment
is also evaluated at every control boundary, where its controller reads the values). At
step ``s`` (after ``s`` optimizer steps) the probes of every experiment due at ``s`` run on
the training model, with the same batched code and blocks as checkpoint scoring, and rank
0 appends the rows to ``scores/inloop.parquet`` in the checkpoint scores' schema, so the
analysis reads both alike (``designkit.runfile.RunDir.inloop_scores``).

Every rank evaluates the same pairs (under FSDP every rank must join each forward pass);
only rank 0 writes. Evaluation switches the model to eval mode and back, and runs inside a
forked RNG, so a run with in-loop evaluation trains bit-identically to one without.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from designkit.atomic_files import atomic_path
from designkit.controllers import ControllerSpec
from designkit.data.tokenizer import lazy_decoder
from designkit.probes import PlanProbes, ProbeContext
from designkit.probes import plan_probes as resolve_plan_probes
from designkit.runfile import inloop_file
from engine.score import _score_rows, pair_blocks, score_block_rows, scores_frame, scores_table


class InloopEvaluator:
    """The plan's in-loop probes; ``evaluate`` scores the experiments due at a step."""

    def __init__(self, probes: PlanProbes, every: dict[str, list[int]], eos_id: int, run_dir: Path, *, write: bool, resume_step: int,
                 steps: dict[str, set[int]] | None = None):
        self.probes = probes
        self.every = every  # experiment → the step periods it is evaluated at
        self.steps = steps or {}  # experiment → further single steps it is evaluated at
        self.eos_id = eos_id
        self.file = inloop_file(run_dir)
        self.write = write
        self._frames: list[pd.DataFrame] = []
        if write and self.file.is_file():
            # a resumed run keeps the rows up to its checkpoint: later ones are evaluated again
            earlier = scores_frame(pq.read_table(self.file))
            self._frames.append(earlier[earlier["step"] <= resume_step])

    @classmethod
    def from_plan(cls, plan, run_dir: Path, *, write: bool, resume_step: int, sequence=None) -> InloopEvaluator | None:
        """``sequence``: global sequence → its trained tokens (the training stream), for probes over run sequences."""
        every: dict[str, list[int]] = {}
        for spec in plan.experiment_specs:
            periods = [spec.inloop_every] if spec.inloop_every else []
            if spec.controller:
                periods.append(ControllerSpec.from_json(spec.controller).every)
            if periods:
                every[spec.name] = sorted(set(periods))
        steps = {spec.name: set(spec.inloop_steps) for spec in plan.experiment_specs if spec.inloop_steps}
        if not every and not steps:
            return None
        specs = [s for s in plan.experiment_specs if s.name in every or s.name in steps]
        eos_id = int(plan.meta["corpus"]["eos_id"])
        probes = resolve_plan_probes(specs, plan.probe_rows(), ProbeContext(eos_id, sequence, lazy_decoder(plan.tokenizer_dir)),
                                     file=plan.path / "plan.json")
        return cls(probes, every, eos_id, run_dir, write=write, resume_step=resume_step, steps=steps)

    def due(self, step: int) -> list[str]:
        names = {name for name, periods in self.every.items() if any(step % p == 0 for p in periods)}
        names |= {name for name, steps in self.steps.items() if step in steps}
        return sorted(names)

    def evaluate(self, model, step: int, device: torch.device) -> pd.DataFrame | None:
        """The rows of the experiments due at ``step`` (None if none is due); rank 0 writes them."""
        due = self.due(step)
        if not due:
            return None
        chosen = np.flatnonzero(self.probes.keys["experiment"].isin(due).to_numpy())
        sub = PlanProbes(keys=self.probes.keys.iloc[chosen].reset_index(drop=True),
                         jobs=[self.probes.jobs[i] for i in chosen], schema=self.probes.schema)  # fmt: skip
        was_training = model.training
        model.eval()
        try:
            # probes draw no random numbers today; the fork keeps it so for any probe type
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                blocks = pair_blocks(len(sub.jobs))
                scored = score_block_rows(model, sub, blocks, eos_id=self.eos_id)
        finally:
            model.train(was_training)
        frame = _score_rows(sub, [row for block in blocks for row in scored[block]], step)
        if self.write:
            self._frames.append(frame)
            everything = pd.concat(self._frames, ignore_index=True)
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.file) as tmp:
                pq.write_table(scores_table(everything, self.probes.schema), tmp, compression="zstd")
        return frame
