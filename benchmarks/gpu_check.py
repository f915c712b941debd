"""One-GPU check of the engine: throughput, MFU and the cost of injection at ~120M parameters.

    benchmarks/gpu_check.sh              # one H100/H200, <= 5 minutes, offline
    benchmarks/gpu_check.sh --cpu-smoke  # tiny model, few steps, CPU (run by the tests)

GPU mode: a GPT-2-small-sized LitGPT model (12 layers, 768 wide, LLaMA MLP, ~120M
parameters with the demo's 4096-token BPE), seq_len 1024, 32 sequences per step, 50 steps
in bf16-mixed, on a demo-style plan (designs/demo.yaml's experiments scaled up to the
run) and on its empty twin, alternating twice. Prints tokens/s, MFU (6N + attention FLOPs
per token, ``litgpt.utils.flops_per_param``, over the H100's dense bf16 peak of
989 TFLOP/s) and the ratio demo/empty. Then a short FSDP run on the one GPU with a
checkpoint and a resume, to exercise the sharded save/load path (``--no-fsdp`` skips it).
Everything (corpus, tokenizer, plans, runs) is built locally in ``--workdir``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import demo_plans

H100_BF16_PEAK = 989e12

GPT2_SMALL_LIKE = {
    "n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "bias": False, "rotary_percentage": 1.0,
    "parallel_residual": False, "norm_class_name": "RMSNorm", "mlp_class_name": "LLaMAMLP", "intermediate_size": 3072,
}  # fmt: skip
TINY = {
    "n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "bias": False, "rotary_percentage": 1.0,
    "parallel_residual": False, "norm_class_name": "RMSNorm", "mlp_class_name": "LLaMAMLP", "intermediate_size": 128,
}  # fmt: skip


def small_corpus(root: Path) -> str:
    """The first 120 stdlib docstring documents with a 512-token BPE (the tests' corpus)."""
    from designkit.data.corpus import prepare_corpus
    from designkit.data.stdlib_docs import write_jsonl

    corpus = root / "corpus"
    if not (corpus / "corpus.json").is_file():
        source = write_jsonl(root / "docs.jsonl", max_documents=120)
        prepare_corpus(source, corpus, train_vocab=512, show_progress=False, force=True)
    return str(corpus)


def gpu_design(steps: int) -> dict:
    """The demo's experiments on a ~120M model, 32 x 1024 tokens per step, bf16-mixed."""
    design = demo_plans.demo_design(steps, model=GPT2_SMALL_LIKE, seq_len=1024, global_batch=32, train_vocab=4096)
    design["run"]["training"].update({"log_every": 10, "warmup_steps": max(1, steps // 10), "precision": "bf16-mixed"})
    return design


def smoke_design(steps: int, corpus: str) -> dict:
    """The demo's experiments on a tiny model over the tests' small corpus."""
    design = demo_plans.demo_design(steps, model=TINY, seq_len=64, global_batch=8, corpus=corpus, max_injected_fraction=0.5)
    for exp in design["experiments"]:
        if exp["kind"] == "canary":  # short canaries: the small BPE spends more tokens per character
            exp["items"]["generate"]["length"] = 16
    design["run"]["training"].update({"log_every": 5, "warmup_steps": 2})
    return design


def steady_tokens_per_s(run_dir: Path) -> float:
    """tokens/s over every metrics window but the first (warm-up, cudnn/allocator settling)."""
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cumulative = [0] + [int(r["tokens"]) for r in rows]
    windows = [(b - a, float(r["tokens_per_s"])) for a, b, r in zip(cumulative, cumulative[1:], rows)][1:]
    return sum(t for t, _ in windows) / sum(t / rate for t, rate in windows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny model, few steps, on CPU")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 50 on GPU, 10 on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of (demo-style, empty)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (adds ~1 min of compilation per run)")
    parser.add_argument("--no-fsdp", action="store_true", help="skip the FSDP save/resume check")
    parser.add_argument("--workdir", type=Path, default=None, help="plans, runs and the corpus cache (default: a temporary dir)")
    args = parser.parse_args(argv)

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="designkit-gpu-check-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DESIGNKIT_HOME", str(workdir / "home"))  # built-in corpus cache: nothing outside workdir
    import torch

    from designkit.planning.planfile import Plan
    from engine.train import train

    t_start = time.perf_counter()
    if args.cpu_smoke:
        torch.set_num_threads(1)
        accelerator, steps = "cpu", args.steps or 20
        corpus = small_corpus(workdir)
        make_design = lambda n: smoke_design(n, corpus)  # noqa: E731
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run on a GPU machine or pass --cpu-smoke")
        accelerator, steps = "cuda", args.steps or 50
        make_design = gpu_design
    design = make_design(steps)
    design["run"]["training"]["compile"] = bool(args.compile)
    plans = {"demo-style": demo_plans.make(design, workdir, "demo-style")}
    plans["empty"] = demo_plans.make_empty(design, workdir, "empty", plans["demo-style"])
    meta = Plan.open(plans["demo-style"]).meta
    geometry, config = meta["geometry"], meta["model"]["config"]
    device = torch.cuda.get_device_name(0) if accelerator == "cuda" else "CPU"
    print(f"{device}: {meta['model']['n_params'] / 1e6:.1f}M params, {steps} steps x {geometry['global_batch']} x {geometry['seq_len']} tokens, "
          f"{meta['budget']['injected_fraction']:.2%} injected ({len(Plan.open(plans['demo-style']).placements())} edits), "
          f"setup {time.perf_counter() - t_start:.0f}s", flush=True)  # fmt: skip

    from litgpt.utils import flops_per_param

    train_flops_per_seq = 3 * flops_per_param(geometry["seq_len"], config["n_layer"], config["n_embd"], meta["model"]["n_params"])
    results: dict[str, list[float]] = {"demo-style": [], "empty": []}
    for round_ in range(args.repeats):
        for name, plan in plans.items():
            run_dir = workdir / f"run-{name}"
            summary = train(plan, run_dir, force=run_dir.exists(), accelerator=accelerator, show_progress=False)
            rate = steady_tokens_per_s(run_dir)
            results[name].append(rate)
            mfu = rate / geometry["seq_len"] * train_flops_per_seq / H100_BF16_PEAK
            print(f"round {round_ + 1} {name:10s}: {rate:12,.0f} tokens/s  MFU {mfu:6.1%}  final loss {summary.final_loss:.3f}  "
                  f"({summary.applied_edits} edits applied and checked)", flush=True)  # fmt: skip

    demo, empty = statistics.median(results["demo-style"]), statistics.median(results["empty"])
    mfu = demo / geometry["seq_len"] * train_flops_per_seq / H100_BF16_PEAK
    print()
    print(f"tokens/s (demo-style plan) : {demo:,.0f}")
    print(f"tokens/s (empty plan)      : {empty:,.0f}")
    print(f"MFU (demo-style, bf16 peak 989 TFLOP/s): {mfu:.1%}" + ("  [CPU smoke: not meaningful]" if args.cpu_smoke else ""))
    print(f"ratio demo-style/empty     : {demo / empty:.3f} (target >= 0.99)")
    if accelerator == "cuda":
        print(f"peak GPU memory            : {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if accelerator == "cuda" and not args.no_fsdp:
        fsdp_check(workdir, gpu_design(10), train)
    print(f"total {time.perf_counter() - t_start:.0f}s")
    return 0


def fsdp_check(workdir: Path, design: dict, train) -> None:
    """FSDP on one GPU: a 10-step run with a mid-run checkpoint, then a resume from it."""
    import shutil

    import torch

    design["run"]["training"].update({"checkpoints": [5, 10], "log_every": 5})
    plan = demo_plans.make(design, workdir, "fsdp-plan")
    run_dir = workdir / "run-fsdp"
    train(plan, run_dir, force=run_dir.exists(), strategy="fsdp", accelerator="cuda", show_progress=False)
    final = torch.load(run_dir / "checkpoints/step-00000010/lit_model.pth", map_location="cpu", weights_only=True)
    shutil.rmtree(run_dir / "checkpoints/step-00000010")  # as if the run died after step 5
    summary = train(plan, run_dir, resume=True, strategy="fsdp", accelerator="cuda", show_progress=False)
    again = torch.load(run_dir / "checkpoints/step-00000010/lit_model.pth", map_location="cpu", weights_only=True)
    worst = max((final[k].float() - again[k].float()).abs().max().item() for k in final)
    print(f"FSDP: trained 10 steps, resumed from step {summary.resumed_from}: max |weight difference| vs uninterrupted = {worst:.2e}")


if __name__ == "__main__":
    sys.exit(main())
