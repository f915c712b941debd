"""Scoring throughput: batched probes vs the one-item-at-a-time reference.

Plans a few hundred items on a small stdlib-docstring corpus (multiple-choice questions
with gold and unrelated-prompt log-probs, canaries and corpus texts with text loss and
greedy extraction), writes a tiny LitGPT checkpoint trained for a few steps on the
payloads, then scores every (item, probe) pair with ``engine.probes.score_probes`` and
with ``score_probes_reference``. Prints items/s of both, the ratio (target ≥ 10×), the
ratio per probe type and the largest difference between the two. About a minute on 2
CPU cores. Run: python benchmarks/eval_throughput.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml

TARGET_RATIO = 10.0
TINY_MODEL = {
    "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64, "bias": False, "rotary_percentage": 1.0,
    "parallel_residual": False, "norm_class_name": "RMSNorm", "mlp_class_name": "LLaMAMLP", "intermediate_size": 64,
}


def make_plan(root: Path, n_questions: int, n_canaries: int, n_texts: int) -> Path:
    from designkit.data.corpus import prepare_corpus
    from designkit.data.stdlib_docs import write_jsonl
    from designkit.planning import make_plan as plan_design

    source = write_jsonl(root / "docs.jsonl", max_documents=160)
    prepare_corpus(source, root / "corpus", train_vocab=512, show_progress=False)
    half = {"control": {"dose": 0, "share": 0.5}}
    design = {
        "name": "eval-throughput",
        "seed": 1,
        "run": {
            "model": {"config": TINY_MODEL},
            "corpus": str(root / "corpus"),
            "seq_len": 64,
            "global_batch": 8,
            "steps": 400,
            "max_injected_fraction": 0.5,
            "reserve_fraction": 0.1,
        },
        "experiments": [
            {"name": "bench", "kind": "contamination", "items": {"generate": {"n": n_questions}},
             "arms": {**half, "x4": {"dose": 4, "share": 0.5}}},
            {"name": "canary", "kind": "canary", "items": {"generate": {"n": n_canaries, "length": 24}},
             "arms": {**half, "x3": {"dose": 3, "share": 0.5}}, "params": {"prefix_tokens": 8}},
            {"name": "texts", "kind": "texts", "items": {"generate": {"n": n_texts, "n_tokens": 48}},
             "arms": {**half, "x2": {"dose": 2, "share": 0.5}}},
        ],
    }
    (root / "design.yaml").write_text(yaml.safe_dump(design, sort_keys=False), encoding="utf-8")
    plan_design(root / "design.yaml", root / "plan", show_progress=False)
    return root / "plan"


def make_model(plan, steps: int):
    """The plan's tiny GPT, trained ``steps`` steps of 64 EOS-wrapped payloads (peaked, non-uniform)."""
    from litgpt.config import Config
    from litgpt.model import GPT

    torch.manual_seed(0)
    model = GPT(Config(**plan.meta["model"]["config"]))
    model.apply(model._init_weights)
    eos = int(plan.meta["corpus"]["eos_id"])
    payloads = [plan.payload_of(i).tolist() for i in range(len(plan.items()))]
    width = max(len(p) for p in payloads) + 2
    batch = torch.full((len(payloads), width), eos, dtype=torch.int64)
    for row, tokens in enumerate(payloads):
        batch[row, 1 : 1 + len(tokens)] = torch.tensor(tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    order = torch.randperm(len(batch))
    for step in range(steps):
        rows = batch[order[(torch.arange(64) + 64 * step) % len(batch)]]
        logits = model(rows[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def write_run(root: Path, plan, model, n_checkpoints: int) -> Path:
    """A run dir of ``plan`` whose ``n_checkpoints`` checkpoints all hold ``model`` (a complete LitGPT layout)."""
    import json

    from litgpt.config import Config
    from litgpt.utils import save_config

    from designkit.runfile import MODEL_FILE, STATE_FILE

    run = root / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"format": "designkit-run/2", "plan_path": str(plan.path), "plan_hash": plan.hash}))
    for step in range(1, n_checkpoints + 1):
        directory = run / "checkpoints" / f"step-{step:08d}"
        directory.mkdir(parents=True)
        torch.save(model.state_dict(), directory / MODEL_FILE)
        save_config(Config(**plan.meta["model"]["config"]), directory)
        torch.save({"step": step}, directory / STATE_FILE)
    return run


def score_processes(run: Path, devices: int, *, force: bool) -> float:
    """Wall time of ``designkit score RUN --devices N --device cpu`` (one torch thread per process)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "designkit.cli", "score", str(run), "--devices", str(devices), "--device", "cpu", "--quiet"]
    start = time.perf_counter()
    subprocess.run(command + (["--force"] if force else []), env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def largest_difference(batched: list[dict], reference: list[dict]) -> float:
    worst = 0.0
    for got, want in zip(batched, reference):
        for column, value in want.items():
            if isinstance(value, (float, list)):
                diff = np.nan_to_num(np.abs(np.asarray(got[column], dtype=float) - np.asarray(value, dtype=float)))
                worst = max(worst, float(np.max(diff, initial=0.0)))
            elif got[column] != value:
                return float("inf")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--canaries", type=int, default=100)
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--batch-tokens", type=int, default=None, help="padded tokens per forward (default: the scorer's)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 avoids contention on shared CPUs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--checkpoints", type=int, default=4, help="checkpoints of the run scored on 1 and on 2 processes")
    args = parser.parse_args()

    from designkit.planning import Plan
    from engine.probes import DEFAULT_BATCH_TOKENS, score_probes, score_probes_reference
    from engine.score import plan_probes

    torch.set_num_threads(args.threads)
    batch_tokens = args.batch_tokens or DEFAULT_BATCH_TOKENS
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = tmp_dir.name
    start = time.perf_counter()
    plan = Plan.open(make_plan(Path(tmp), args.questions, args.canaries, args.texts))
    probes = plan_probes(plan)
    model = make_model(plan, args.train_steps).to(args.device)
    setup = time.perf_counter() - start
    eos = int(plan.meta["corpus"]["eos_id"])
    n_items = probes.keys["item_index"].nunique()
    n_pairs = len(probes.jobs)
    kinds = Counter(probe.name for probe, _ in probes.jobs)
    print(f"plan: {n_items} items, {n_pairs} (item, probe) pairs {dict(kinds)}; setup {setup:.1f}s")
    print(f"device {args.device}, {args.threads} thread(s), batch_tokens {batch_tokens}")

    batched_s, batched = timed(lambda: score_probes(model, probes.jobs, eos_id=eos, batch_tokens=batch_tokens), repeats=3)
    reference_s, reference = timed(lambda: score_probes_reference(model, probes.jobs, eos_id=eos))
    ratio = reference_s / batched_s
    print(f"batched:   {batched_s:7.3f}s  {n_items / batched_s:9.1f} items/s  {n_pairs / batched_s:9.1f} pairs/s")
    print(f"reference: {reference_s:7.3f}s  {n_items / reference_s:9.1f} items/s  {n_pairs / reference_s:9.1f} pairs/s")
    print(f"ratio:     {ratio:7.1f}x  (target >= {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'})")
    print(f"largest |batched - reference| over all columns: {largest_difference(batched, reference):.2e}")
    for kind in kinds:
        subset = [job for job in probes.jobs if job[0].name == kind]
        b, _ = timed(lambda subset=subset: score_probes(model, subset, eos_id=eos, batch_tokens=batch_tokens), repeats=2)
        r, _ = timed(lambda subset=subset: score_probes_reference(model, subset, eos_id=eos))
        print(f"  {kind:16s} {len(subset):5d} pairs  batched {len(subset) / b:9.1f}/s  reference {len(subset) / r:8.1f}/s  ratio {r / b:6.1f}x")

    # designkit score RUN --devices N: whole checkpoints, end to end, on CPU processes (gloo)
    run = write_run(Path(tmp), plan, model.cpu(), args.checkpoints)
    pairs = n_pairs * args.checkpoints
    rates = {}
    for devices in (1, 2):
        total = score_processes(run, devices, force=True)
        startup = score_processes(run, devices, force=False)  # nothing left to score: start-up and launch only
        rates[devices] = pairs / max(total - startup, 1e-9)
        print(f"score --devices {devices} (CPU, 1 thread each): {total:6.1f}s for {args.checkpoints} checkpoints, "
              f"{startup:4.1f}s of it start-up; {rates[devices]:9.1f} pairs/s scoring")  # fmt: skip
    print(f"2 processes / 1 process: {rates[2] / rates[1]:.2f}x (rows identical: same blocks on either)")
    tmp_dir.cleanup()


if __name__ == "__main__":
    main()
