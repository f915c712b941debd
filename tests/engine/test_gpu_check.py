"""benchmarks/gpu_check.sh runs end to end in its CPU smoke mode (offline, tiny model)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from training_runs import engine_env

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_runs_in_cpu_smoke_mode(tmp_path):
    import sys

    env = {**engine_env(), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT), "--cpu-smoke", "--repeats", "1", "--workdir", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    table = result.stdout[result.stdout.index("check "):]
    for row in ("precision", "fused AdamW", "applied log", "MFU engine, demo-style plan", "MFU engine, empty plan",
                "MFU plain LitGPT-style loop", "injection overhead demo/empty", "engine/plain loop", "torch.compile", "FSDP save/load"):
        assert f"\n{row} " in table, row
    assert "FAIL" not in table
    assert "edits applied and checked against the plan" in table
