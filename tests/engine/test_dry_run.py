"""``designkit train PLAN --dry-run``: the cluster layout is printed, nothing is trained or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from designkit.cli import main
from engine.dry_run import estimate_memory

SRC = Path(__file__).resolve().parents[2] / "src"
OLMO2_1B = {"n_layer": 16, "n_embd": 2048, "n_head": 16, "n_query_groups": 16, "intermediate_size": 8192,
            "mlp_class_name": "LLaMAMLP", "vocab_size": 100278, "padded_vocab_size": 100352}  # fmt: skip


def test_dry_run_prints_the_layout_without_torch_and_writes_no_run(tmp_path, tiny_plan):
    run = tmp_path / "run"
    code = (
        "import sys; from designkit.cli import main\n"
        f"rc = main(['train', {str(tiny_plan)!r}, '--out', {str(run)!r}, '--dry-run', '--devices', '2', '--num-nodes', '2', "
        "'--strategy', 'fsdp'])\n"
        "assert 'torch' not in sys.modules, 'a dry run imported torch'\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tiny_plan.rglob("*"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # tiny plan: global batch 8 of 64 tokens over 2 × 2 processes: 2 sequences each, one micro-batch
    for needle in ("2 per node × 2 node(s) = 4 processes", "strategy: fsdp", "HYBRID_SHARD", "micro-batch: 2 sequences",
                   "gradient accumulation: 1 micro-batches", "(8 % 8 = 0): ok", "tokens per step: 512 (128 per device)",
                   "memory per device (estimate):", "assumes:"):  # fmt: skip
        assert needle in out, out
    assert not run.exists()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tiny_plan.rglob("*")) == before


def test_dry_run_refuses_a_global_batch_the_world_does_not_divide(tmp_path, tiny_plan, capsys):
    rc = main(["train", str(tiny_plan), "--dry-run", "--devices", "3", "--strategy", "ddp", "--accelerator", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "global_batch" in err[0] and "3 processes" in err[0]


def test_train_without_out_or_dry_run_is_refused_in_one_line(tiny_plan, capsys):
    assert main(["train", str(tiny_plan)]) == 2
    assert "--out" in capsys.readouterr().err


def test_fsdp_shards_model_states_over_a_nodes_devices_and_activations_do_not_shrink():
    common = dict(micro_batch=4, seq_len=4096, precision="bf16-mixed")
    ddp = estimate_memory(OLMO2_1B, strategy="ddp", devices=8, **common)
    fsdp = estimate_memory(OLMO2_1B, strategy="fsdp", devices=8, **common)
    # 1.48B parameters: fp32 weights, gradients and two AdamW moments are 16 bytes each
    assert 1.4e9 * 16 < ddp.parameters + ddp.gradients + ddp.adamw < 1.6e9 * 16
    assert fsdp.parameters * 8 == ddp.parameters and fsdp.adamw * 8 == ddp.adamw
    assert fsdp.activations == ddp.activations and fsdp.gathered > 0 == ddp.gathered
    # 34 bytes × tokens × hidden × layers of 16-bit activations (Korthikanti et al. 2022)
    assert ddp.activations == 34 * 4 * 4096 * 2048 * 16
    assert estimate_memory(OLMO2_1B, strategy="ddp", devices=8, micro_batch=2, seq_len=4096, precision="bf16-mixed").activations * 2 == ddp.activations
