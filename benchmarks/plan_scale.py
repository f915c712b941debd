"""Planning at pretraining scale: 10 million placements for a 210B-token geometry.

seq_len 4096 × global_batch 512 × 100k steps = 51.2M sequences (210B tokens). 100k items of
20–400 tokens with dose 100 each give 10M insertions (~2% of the tokens). Prints the wall
time and peak memory of placement plus writing and re-reading the placements table, and the
ratio to the targets (60 s, 4 GB). Run: python benchmarks/plan_scale.py

``--full`` instead runs the whole ``designkit plan`` (design validation, item generation,
randomization, tokens, budget, placement, leakage against the built-in corpus, power, plan
files) on a design of 100k canaries of 32 tokens × dose 100 at the same geometry, and
prints its wall time, CPU time (user + system; the wall time suffers when the CPUs are
shared) and peak memory against the targets (10 s, 1.5 GB).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from designkit.planning.placement import InsertionRequest, check_placements, place_insertions
from designkit.planning.planfile import write_placements

TARGET_SECONDS = 60.0
TARGET_BYTES = 4 * 1024**3
FULL_TARGET_SECONDS = 10.0
FULL_TARGET_BYTES = 1.5e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dose", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--full", action="store_true", help="time the whole planner on a canary design")
    args = parser.parse_args()
    if args.full:
        return full_plan(args)
    seq_len, global_batch = 4096, 512
    n_sequences = args.steps * global_batch
    rng = np.random.default_rng(0)
    request = InsertionRequest(
        item_index=np.arange(args.items, dtype=np.int32),
        footprint=rng.integers(20, 400, args.items),
        dose=np.full(args.items, args.dose),
        window_lo=np.zeros(args.items, dtype=np.int64),
        window_hi=np.full(args.items, n_sequences),
    )
    start = time.perf_counter()
    placements = place_insertions(request, n_sequences=n_sequences, seq_len=seq_len, rng=np.random.default_rng(1))
    placed = time.perf_counter()
    placements["edit"] = pd.Categorical.from_codes(np.zeros(len(placements), dtype=np.int8), categories=["insert", "remove", "noise"])
    item_ids = pd.Index([f"exp/{i:06d}" for i in range(args.items)])
    placements["reserve_seq"] = np.int64(-1)
    placements["noise_seed"] = np.int64(-1)
    placements["noise_std"] = np.float32(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "placements.parquet"
        write_placements(placements, item_ids.to_numpy(), path)
        written = time.perf_counter()
        size = path.stat().st_size
        back = pd.read_parquet(path, columns=["global_seq", "offset", "n_tokens", "edit"])
        problem = check_placements(back, seq_len=seq_len, n_sequences=n_sequences)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total = done - start
    print(f"placements: {len(placements):,} in {n_sequences:,} sequences ({n_sequences * seq_len / 1e9:.0f}B tokens), invariants: {problem or 'hold'}")
    print(f"place {placed - start:.1f} s, write {written - placed:.1f} s ({size / 1e6:.0f} MB), read+check {done - written:.1f} s")
    print(f"total {total:.1f} s = {total / TARGET_SECONDS:.2f} of the {TARGET_SECONDS:.0f} s target")
    print(f"peak memory {peak / 1e9:.2f} GB = {peak / TARGET_BYTES:.2f} of the 4 GB target")


def full_plan(args: argparse.Namespace) -> None:
    import yaml

    from designkit.planning import make_plan

    design = {
        "name": "plan-scale",
        "seed": 0,
        "run": {
            "model": {"config": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 4096}},
            "corpus": "builtin:stdlib-docs",
            "tokenizer": {"train_vocab": 4096},
            "seq_len": 4096,
            "global_batch": 512,
            "steps": args.steps,
        },
        "experiments": [
            {
                "name": "canaries",
                "kind": "canary",
                "items": {"generate": {"n": 2 * args.items, "length": 32}},
                "arms": {"control": {"dose": 0, "share": 0.5}, "treated": {"dose": args.dose, "share": 0.5}},
            }
        ],
    }
    from designkit.design import parse_design
    from designkit.planning.planner import resolve_corpus

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "design.yaml"
        path.write_text(yaml.safe_dump(design))
        resolve_corpus(parse_design(design, path), show_progress=False)  # the corpus is prepared once, not timed
        start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        result = make_plan(path, Path(tmp) / "plan", show_progress=False)
        total, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        size = sum(p.stat().st_size for p in (Path(tmp) / "plan").rglob("*") if p.is_file())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    insertions = sum(row["insertions"] for row in result.meta["budget"]["rows"])
    print(f"designkit plan: {insertions:,} placements for {2 * args.items:,} canaries, plan dir {size / 1e6:.0f} MB")
    print(f"wall {total:.1f} s = {total / FULL_TARGET_SECONDS:.2f} of the {FULL_TARGET_SECONDS:.0f} s target; CPU {cpu:.1f} s = {cpu / FULL_TARGET_SECONDS:.2f} of it")
    print(f"peak memory {peak / 1e9:.2f} GB = {peak / FULL_TARGET_BYTES:.2f} of the {FULL_TARGET_BYTES / 1e9:.1f} GB target")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
