"""One-GPU check of the engine: bf16, torch.compile, fused AdamW, FSDP, MFU vs a plain loop, injection cost.

    benchmarks/gpu_check.sh              # one H100/H200, offline; sized for < 8 minutes (not yet timed on a GPU)
    benchmarks/gpu_check.sh --cpu-smoke  # tiny model, few steps, CPU (run by the tests)

GPU mode: a GPT-2-small-sized LitGPT model (12 layers, 768 wide, LLaMA MLP, ~120M
parameters with the demo's 4096-token BPE), seq_len 1024, 32 sequences per step, 50 steps
in bf16-mixed. In one process, alternating ``--repeats`` rounds of

  (a) the engine on a demo-style plan (designs/demo.yaml's experiments scaled to the run),
  (b) the engine on its empty twin (same items, nothing inserted),
  (c) a plain LitGPT-style loop (benchmarks/reference_loop.py) on the same model and the
      same base windows,

then one round of (a) and (c) under ``torch.compile``, then a short FSDP run on the one
GPU that saves a checkpoint, is cut off, and resumes from it. MFU counts 6N + attention
FLOPs per token (``litgpt.utils.flops_per_param``) over the dense bf16 peak of an
H100/H200 SXM (989 TFLOP/s). The engine's optimizer is checked to be the fused AdamW.
Prints one table (check, result, detail). Everything (corpus, tokenizer, plans, runs) is
built locally in ``--workdir``; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import demo_plans

BF16_PEAK = 989e12  # H100 SXM and H200: dense bf16 tensor-core peak

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
    """tokens/s over every metrics window but the first (warm-up, compilation, allocator settling)."""
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cumulative = [0] + [int(r["tokens"]) for r in rows]
    windows = [(b - a, float(r["tokens_per_s"])) for a, b, r in zip(cumulative, cumulative[1:], rows)][1:]
    return sum(t for t, _ in windows) / sum(t / rate for t, rate in windows)


class OptimizerSpy:
    """Records the keyword arguments of every ``torch.optim.AdamW`` the engine builds."""

    def __init__(self):
        import torch

        self.calls: list[dict] = []
        self._original = torch.optim.AdamW
        spy = self

        class RecordingAdamW(self._original):
            def __init__(self, params, **kwargs):
                spy.calls.append(kwargs)
                super().__init__(params, **kwargs)

        self._recording = RecordingAdamW

    def __enter__(self):
        import torch

        torch.optim.AdamW = self._recording
        return self

    def __exit__(self, *exc):
        import torch

        torch.optim.AdamW = self._original


class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def add(self, check: str, result: str, detail: str = "") -> None:
        self.rows.append((check, result, detail))
        print(f"  {check}: {result}  {detail}", flush=True)

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        result_width = max(len(r[1]) for r in self.rows)
        print()
        print(f"{'check':{width}s}  {'result':{result_width}s}  detail")
        print(f"{'-' * width}  {'-' * result_width}  {'-' * 40}")
        for check, result, detail in self.rows:
            print(f"{check:{width}s}  {result:{result_width}s}  {detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny model, few steps, on CPU")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 50 on GPU, 20 on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of (demo-style, empty, plain loop)")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None, help="add the torch.compile round (default on GPU)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile round")
    parser.add_argument("--no-fsdp", action="store_true", help="skip the FSDP save/resume check")
    parser.add_argument("--workdir", type=Path, default=None, help="plans, runs and the corpus cache (default: a temporary dir)")
    args = parser.parse_args(argv)

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="designkit-gpu-check-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DESIGNKIT_HOME", str(workdir / "home"))  # built-in corpus cache: nothing outside workdir
    import torch

    from designkit.planning.planfile import Plan
    from engine.train import train
    from reference_loop import reference_run

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
    use_compile = (not args.cpu_smoke) if args.compile is None else args.compile
    design = make_design(steps)
    plans = {"demo-style": demo_plans.make(design, workdir, "demo-style")}
    plans["empty"] = demo_plans.make_empty(design, workdir, "empty", plans["demo-style"])
    meta = Plan.open(plans["demo-style"]).meta
    geometry, config = meta["geometry"], meta["model"]["config"]
    precision = meta["training"].get("precision") or ("bf16-mixed" if accelerator == "cuda" else "32-true")
    device = torch.cuda.get_device_name(0) if accelerator == "cuda" else "CPU"
    print(f"{device}: torch {torch.__version__}, {meta['model']['n_params'] / 1e6:.1f}M params, {steps} steps x {geometry['global_batch']} x "
          f"{geometry['seq_len']} tokens, {meta['budget']['injected_fraction']:.2%} injected ({len(Plan.open(plans['demo-style']).placements())} edits), "
          f"setup {time.perf_counter() - t_start:.0f}s", flush=True)  # fmt: skip

    from litgpt.utils import flops_per_param

    flops_per_token = 3 * flops_per_param(geometry["seq_len"], config["n_layer"], config["n_embd"], meta["model"]["n_params"]) / geometry["seq_len"]
    mfu = lambda rate: rate * flops_per_token / BF16_PEAK  # noqa: E731
    skip = max(1, int(meta["training"]["log_every"]))
    table = Table()

    def engine(plan: Path, name: str) -> tuple[float, object]:
        run_dir = workdir / f"run-{name}"
        with OptimizerSpy() as spy:
            summary = train(plan, run_dir, force=run_dir.exists(), accelerator=accelerator, show_progress=False)
        return steady_tokens_per_s(run_dir), (summary, spy.calls, run_dir)

    results: dict[str, list[float]] = {"demo-style": [], "empty": [], "plain loop": []}
    last = {}
    for round_ in range(args.repeats):
        for name in ("demo-style", "empty"):
            rate, last[name] = engine(plans[name], name)
            results[name].append(rate)
            print(f"round {round_ + 1} {name:10s}: {rate:12,.0f} tokens/s  MFU {mfu(rate):6.1%}  final loss {last[name][0].final_loss:.3f}", flush=True)
        rate = reference_run(plans["demo-style"], accelerator=accelerator, precision=precision, skip_steps=skip)["tokens_per_s"]
        results["plain loop"].append(rate)
        print(f"round {round_ + 1} plain loop: {rate:12,.0f} tokens/s  MFU {mfu(rate):6.1%}", flush=True)
    median = {k: statistics.median(v) for k, v in results.items()}

    summary, optimizer_calls, run_dir = last["demo-style"]
    run_precision = meta["training"].get("precision")
    import json

    trained_precision = json.loads((run_dir / "run.json").read_text())["precision"]
    finite = summary.final_loss is not None and math.isfinite(summary.final_loss)
    table.add("precision", "ok" if finite and trained_precision == precision else "FAIL",
              f"{trained_precision} (plan: {run_precision or 'default'}), final loss {summary.final_loss:.3f}")  # fmt: skip
    fused = [call.get("fused") for call in optimizer_calls]
    if accelerator == "cuda":
        table.add("fused AdamW", "ok" if fused == [True] else "FAIL", f"engine's AdamW(fused={fused[0] if fused else None}), {summary.steps} steps taken")
    else:
        table.add("fused AdamW", "n/a", f"CPU: engine's AdamW(fused={fused[0] if fused else None}); fused needs CUDA")
    table.add("applied log", "ok", f"{summary.applied_edits} edits applied and checked against the plan")
    for name, label in (("demo-style", "engine, demo-style plan"), ("empty", "engine, empty plan"), ("plain loop", "plain LitGPT-style loop")):
        table.add(f"MFU {label}", f"{mfu(median[name]):.1%}", f"{median[name]:,.0f} tokens/s (median of {args.repeats})")
    table.add("injection overhead demo/empty", f"{median['demo-style'] / median['empty']:.3f}", "tokens/s ratio, target >= 0.99")
    table.add("engine/plain loop", f"{median['demo-style'] / median['plain loop']:.3f}", "tokens/s ratio, target >= 0.95")

    if use_compile:
        compiled_design = {**design, "run": {**design["run"], "training": {**design["run"]["training"], "compile": True}}}
        compiled_plan = demo_plans.make(compiled_design, workdir, "demo-style-compiled")
        t0 = time.perf_counter()
        rate, (csummary, _, _) = engine(compiled_plan, "compiled")
        seconds = time.perf_counter() - t0
        ref = reference_run(plans["demo-style"], accelerator=accelerator, precision=precision, skip_steps=skip, compile=True)["tokens_per_s"]
        ok = csummary.final_loss is not None and math.isfinite(csummary.final_loss)
        table.add("torch.compile engine", "ok" if ok else "FAIL",
                  f"MFU {mfu(rate):.1%}, {rate:,.0f} tokens/s = {rate / median['demo-style']:.2f}x eager, run {seconds:.0f}s incl. compiling")  # fmt: skip
        table.add("torch.compile plain loop", f"{mfu(ref):.1%}", f"MFU, {ref:,.0f} tokens/s; engine/plain loop compiled = {rate / ref:.3f}")
    else:
        table.add("torch.compile", "skipped", "--compile adds it (default on GPU)")

    if accelerator == "cuda":
        table.add("peak GPU memory", f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", "")
        if not args.no_fsdp:
            table.add(*fsdp_check(workdir, gpu_design(10), train))
    else:
        table.add("FSDP save/load", "skipped", "needs CUDA")
    table.add("total time", f"{time.perf_counter() - t_start:.0f}s", "target < 8 min on one H100/H200")
    table.print()
    return 1 if any(row[1] == "FAIL" for row in table.rows) else 0


def fsdp_check(workdir: Path, design: dict, train) -> tuple[str, str, str]:
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
    ok = summary.resumed_from == 5 and final.keys() == again.keys() and worst < 1e-2
    return "FSDP save/load", "ok" if ok else "FAIL", f"saved at step 5, resumed from step {summary.resumed_from}: max |weight diff| vs uninterrupted {worst:.2e}"


if __name__ == "__main__":
    sys.exit(main())
