"""Shared tiny plans and training runs of the engine tests, built once per session.

A normal module, like ``tests/tiny_designs.py``, not a second ``conftest``. Builders cache their
result under pytest's session base temp dir, so every test module that asks gets the same
directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tiny_designs import tiny_design, write_design

CHECKPOINTS = [10, 20, 30, 40]  # explicit steps, so a mid-run checkpoint exists to resume from
HERE = Path(__file__).resolve().parent


def _shared(tmp_path_factory, name: str) -> Path:
    return tmp_path_factory.getbasetemp() / f"engine-{name}"


def engine_design(corpus: Path, **overrides) -> dict:
    return tiny_design(corpus, **{"run.training.checkpoints": CHECKPOINTS, **overrides})


def make_engine_plan(tmp_path_factory, corpus: Path, name: str = "plan", **overrides) -> Path:
    from designkit.planning import make_plan

    root = _shared(tmp_path_factory, name)
    if not (root / "plan" / "plan.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        design = write_design(root / "design.yaml", engine_design(corpus, **overrides))
        make_plan(design, root / "plan", force=True, show_progress=False)
    return root / "plan"


def make_trained_run(tmp_path_factory, plan: Path, name: str = "run") -> Path:
    """The uninterrupted one-process reference run of ``plan`` (in this process, CPU)."""
    from engine.train import train

    run = _shared(tmp_path_factory, name)
    if not (run / "applied.parquet").is_file():
        train(plan, run, force=run.exists(), accelerator="cpu", show_progress=False)
    return run


def engine_env() -> dict[str, str]:
    # one intra-op thread: deterministic kernels and no contention on a shared 2-core box
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def engine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "designkit.cli", "train", *map(str, args), "--quiet"]


def run_engine(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(engine_command(*args), env=engine_env(), capture_output=True, text=True, timeout=timeout)


def kill_after_checkpoint(plan: Path, run_dir: Path, *, step: int, chunk_end: int, slowdown: float, timeout: float = 240.0) -> int:
    """Start a slowed-down training process and SIGKILL it once it is past checkpoint ``step``.

    The applied-log chunk ``part-STEP-CHUNK_END`` is written only after that checkpoint and
    before the run ends, so its appearance is the moment to kill. Returns the exit code.
    """
    import signal
    import time

    import pytest

    command = [sys.executable, str(HERE / "slow_engine_main.py"), str(slowdown), "train", str(plan), "--out", str(run_dir), "--quiet"]
    proc = subprocess.Popen(command, env=engine_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    marker = run_dir / "applied" / f"part-{step:08d}-{chunk_end:08d}-r00000.parquet"
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never reached checkpoint {step}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode
