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
    assert "tokens/s (demo-style plan)" in result.stdout
    assert "ratio demo-style/empty" in result.stdout
    assert "edits applied and checked" in result.stdout
