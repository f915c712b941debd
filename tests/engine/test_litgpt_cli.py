"""The ecosystem promise: LitGPT's own CLI reads a checkpoint designkit trained, unchanged.

``litgpt generate RUN/checkpoints/step-…`` needs what the LitGPT CLI imports (``requests``
for jsonargparse's config reader, declared in pyproject.toml) and what the checkpoint dir
holds (``lit_model.pth``, ``model_config.yaml``, the tokenizer files).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from training_runs import make_engine_plan, make_trained_run

from engine import checkpoint

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_corpus):
    return make_trained_run(tmp_path_factory, make_engine_plan(tmp_path_factory, tiny_corpus))


def test_litgpt_generate_runs_on_a_checkpoint_the_tests_trained(tmp_path, trained_run):
    step = checkpoint.step_dir(trained_run, 40)
    command = [sys.executable, "-m", "litgpt", "generate", str(step), "--prompt", "The", "--max_new_tokens", "8",
               "--precision", "32-true", "--temperature", "0"]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # litgpt prints its settings, then the prompt and the 8 tokens it generated
    assert any(line.startswith("The") and len(line) > len("The") for line in result.stdout.splitlines()), result.stdout
    assert "Time for inference" in result.stderr
    assert not any(tmp_path.iterdir()), "litgpt generate wrote into the working directory"
