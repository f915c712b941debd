"""Train and score the sub-runs of an INTERFERENCE dir, one after another, into ``runs/NAME``.

Each sub-run is an ordinary ``designkit train`` of its sub-plan, so a scheduler can run
them in parallel instead (``designkit train-interference DIR --print-commands``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from designkit.errors import InputError
from designkit.planning.interference import InterferenceDir
from designkit.runfile import APPLIED_FILE, RUN_FILE, RunDir


def is_finished(run_dir: Path, steps: int) -> bool:
    """A run dir that holds its final checkpoint and the merged, checked applied log."""
    if not (run_dir / RUN_FILE).is_file() or not (run_dir / APPLIED_FILE).is_file():
        return False
    return steps in RunDir.open(run_dir).checkpoints()


def train_all(directory: str | Path, *, resume: bool = False, accelerator: str = "auto", show_progress: bool = True) -> Iterator[str]:
    """Train every sub-plan in order; yield one line per run. ``resume`` skips finished runs
    and resumes interrupted ones; without it an existing run dir is refused, as by ``train``."""
    from engine.train import train

    inter = InterferenceDir.open(directory)
    steps = int(inter.meta["steps"])
    if not resume:
        existing = [run["name"] for run in inter.runs if inter.run_dir(run["name"]).exists()]
        if existing:
            raise InputError(inter.run_dir(existing[0]), None, "expected no run directory yet (use --resume to skip finished runs and resume the others)")
    for i, run in enumerate(inter.runs, start=1):
        name = run["name"]
        run_dir = inter.run_dir(name)
        if resume and is_finished(run_dir, steps):
            yield f"[{i}/{len(inter.runs)}] {name}: finished earlier, skipped"
            continue
        summary = train(inter.plan_dir(name), run_dir, resume=resume and run_dir.exists(), accelerator=accelerator, show_progress=show_progress)
        yield f"[{i}/{len(inter.runs)}] {name} (on: {', '.join(run['on']) or 'none'}): {summary}"


def score_all(directory: str | Path, *, device: str = "auto", show_progress: bool = True) -> None:
    """Score the final checkpoint of every sub-run (existing scores are kept)."""
    from engine.score import score_run

    inter = InterferenceDir.open(directory)
    steps = int(inter.meta["steps"])
    for run in inter.runs:
        run_dir = inter.run_dir(run["name"])
        if not is_finished(run_dir, steps):
            raise InputError(run_dir, None, "expected a finished sub-run (run designkit train-interference first)")
        score_run(run_dir, steps=[steps], device=device, show_progress=show_progress)
