"""``designkit`` command line: prepare-corpus | plan | inspect | leakage-scan | train | score | analyze |
demo, and the interference commands (``designkit.interference_cli``).

The engine (torch) is imported only by the commands that train or score, so planning and
analysis work on hosts without a GPU stack. Bad input ends with one line on stderr and
exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from designkit.errors import InputError


def _cmd_prepare_corpus(args: argparse.Namespace) -> None:
    from designkit.data.corpus import prepare_corpus

    corpus = prepare_corpus(
        args.source,
        args.out,
        tokenizer_dir=args.tokenizer,
        train_vocab=args.train_tokenizer,
        text_key=args.text_key,
        dtype=args.dtype,
        eos_id=args.eos_id,
        show_progress=not args.quiet,
        force=args.force,
    )
    meta = corpus.meta
    print(f"corpus {args.out}: {meta['n_tokens']:,} tokens in {meta['n_documents']:,} documents, vocab {meta['vocab_size']:,}, {meta['dtype']}, fingerprint {meta['fingerprint'][:16]}")


def _cmd_plan(args: argparse.Namespace) -> None:
    from designkit.planning import make_plan
    from designkit.planning.summary import format_summary

    result = make_plan(args.design, args.out, force=args.force, show_progress=not args.quiet, corpus=args.corpus)
    print(format_summary(result.meta, result.plan_hash))
    print(f"\nplan written to {result.path}")


def _cmd_inspect(args: argparse.Namespace) -> None:
    from designkit.planning import Plan
    from designkit.planning.summary import describe_item, describe_sequence, format_summary

    plan = Plan.open(args.plan)
    if args.seq is not None:
        print(describe_sequence(plan, args.seq))
    elif args.item is not None:
        print(describe_item(plan, args.item))
    else:
        print(format_summary(plan.meta, plan.hash))


def _cmd_leakage_scan(args: argparse.Namespace) -> None:
    from designkit.planning import Plan
    from designkit.planning import leakage_scan as ls

    if args.workers < 1:
        raise InputError(None, "--workers", f"expected at least 1 process, got {args.workers}")
    shard = ls.parse_shard(args.shard) if args.shard is not None else None
    if shard is not None and args.out is None:
        raise InputError(None, "--out", "expected a file for the shard's result (--shard needs --out)")
    if args.out is not None:
        ls.check_output(args.out, args.force, (ls.SHARD_FORMAT,) if shard else (ls.REPORT_FORMAT,))
    scan = ls.PlanScan(Plan.open(args.plan), args.corpus)
    if args.merge:
        doc = ls.merge(scan, args.merge)
    else:
        from tqdm.auto import tqdm

        part = shard or (0, 1)
        with tqdm(total=scan.windows(part), desc="leakage scan", unit="tok", unit_scale=True, disable=args.quiet, file=sys.stderr) as bar:
            doc = scan.scan(part, workers=args.workers, progress=bar.update)
        if shard is None:
            doc = scan.report([doc])
    if args.out is not None:
        ls.write_json(args.out, doc)
    if shard is not None:
        print(f"leakage shard {shard[0]}/{shard[1]}: {len(doc['items_in_corpus']):,} items found in {sum(b - a for a, b in doc['window_ranges']):,} windows; written to {args.out}")
        return
    print(
        f"leakage ({doc['ngram']}-grams, {doc['corpus_tokens_scanned']:,} of {doc['corpus_tokens_total']:,} training tokens scanned): "
        f"{doc['items_in_corpus']:,} items in the corpus, {doc['cross_experiment_pairs']:,} cross-experiment pairs"
        + (f"; report written to {args.out}" if args.out is not None else "")
    )


def _cmd_train(args: argparse.Namespace) -> None:
    if args.dry_run:
        from engine.dry_run import dry_run

        print(dry_run(args.plan, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy, accelerator=args.accelerator))
        return
    if args.out is None:
        raise InputError("designkit train", "--out", "expected a run directory (--out RUN), or --dry-run")
    from engine.applied_log import AppliedLogMismatch
    from engine.train import train

    try:
        summary = train(
            args.plan,
            args.out,
            resume=args.resume,
            force=args.force,
            devices=args.devices,  # checked by the engine: "auto" or a positive integer
            num_nodes=args.num_nodes,
            strategy=args.strategy,
            accelerator=args.accelerator,
            logger=args.logger,
            corpus=args.corpus,
            show_progress=not args.quiet,
        )
    except AppliedLogMismatch as exc:
        # the run trained, but not the planned experiment: a failure, not bad input
        print(f"designkit: run failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if summary.global_rank == 0:
        print(summary)


def _cmd_score(args: argparse.Namespace) -> None:
    from engine.score import BLOCK_PAIRS, score_run

    block_pairs = BLOCK_PAIRS if args.block_pairs is None else args.block_pairs
    written = score_run(args.run, force=args.force, device=args.device, devices=args.devices, block_pairs=block_pairs,
                        show_progress=not args.quiet)  # fmt: skip
    if written is not None:  # None: a process other than rank 0 of a --devices N run
        print(f"scored {len(written)} checkpoint(s) in {Path(args.run) / 'scores'}")


def _cmd_analyze(args: argparse.Namespace) -> None:
    from designkit.analysis.report import analyze_run, check_report_dir

    check_report_dir(args.out, args.force, args.run)  # refuse before spending time on scoring
    if not args.no_score:
        from engine.score import score_run

        score_run(args.run, device=args.device, show_progress=not args.quiet)
    report = analyze_run(args.run, args.out, force=args.force, allow_applied_mismatch=args.allow_applied_mismatch,
                         baseline_run=args.baseline_run)
    print(report.console_summary())


def _cmd_canaries(args: argparse.Namespace) -> None:
    from engine.least_likely import write_canaries

    lengths = _positive_ints(args.length, "--length")
    for value, option in ((args.n, "--n"), (args.pool, "--pool")):
        if value < 1:
            raise InputError(None, option, f"expected a positive integer, got {value}")
    count = write_canaries(args.from_checkpoint, args.out, args.n, lengths, args.seed, args.pool)
    print(f"wrote {count} least-likely canaries to {args.out}")


def _positive_ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise InputError(None, option, f"expected comma-separated positive integers, got {text!r}")
    return values


def _cmd_demo(args: argparse.Namespace) -> None:
    from designkit.demo import run_demo

    run_demo(args.out, force=args.force, design=args.design, show_progress=not args.quiet, reference=args.reference)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a misused command line is one ``designkit: error:`` line too (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"designkit: error: {self.prog}: expected valid arguments, {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(InputError.exit_code)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="designkit", description="Many controlled experiments inside one pretraining run.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare-corpus", help="tokenize .txt/.jsonl/.parquet text, or import .npy/.bin token ids, into a token memmap")
    p.add_argument("source", help="a file, a directory of files, a quoted glob ('data/*.parquet'), or builtin:stdlib-docs")
    p.add_argument("--out", required=True, type=Path)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--tokenizer", type=Path, help="directory holding tokenizer.json (e.g. a LitGPT checkpoint)")
    group.add_argument("--train-tokenizer", type=int, metavar="VOCAB", help="train a byte-level BPE of this size")
    p.add_argument("--text-key", default="text", help="text field of .jsonl/.parquet records")
    p.add_argument("--dtype", default=None, metavar="uint16|uint32", help="id type of raw token files (.bin, or .npy without a numpy header)")
    p.add_argument("--eos-id", type=int, default=None, help="the id that ends each document in token files (default: the tokenizer's EOS)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_prepare_corpus)

    p = sub.add_parser("plan", help="turn DESIGN.yaml into an immutable plan directory")
    p.add_argument("design", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--corpus", default=None, metavar="DIR",
                   help="use this corpus instead of the design's run.corpus (a prepared corpus directory or builtin:stdlib-docs)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("inspect", help="show a plan, one sequence's edits, or one item")
    p.add_argument("plan", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--seq", type=int, metavar="G", help="global sequence index")
    which.add_argument("--item", metavar="ID", help="item id, e.g. bench/000012")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("leakage-scan", help="check a plan's items against every training token of its corpus")
    p.add_argument("plan", type=Path)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--shard", metavar="I/N", help="scan only shard I of N equal slices of the corpus (one SLURM array task)")
    mode.add_argument("--merge", nargs="+", type=Path, metavar="SHARD", help="combine the shard files of all N shards into the report")
    p.add_argument("--workers", type=int, default=1, help="processes to scan with (default 1)")
    p.add_argument("--corpus", type=Path, default=None, metavar="DIR", help="the plan's corpus at another path; refused unless its fingerprint matches")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the report (or, with --shard, the shard's result)")
    p.add_argument("--force", action="store_true", help="replace an existing leakage report or shard file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_leakage_scan)

    p = sub.add_parser("train", help="carry a plan out with LitGPT on Lightning Fabric")
    p.add_argument("plan", type=Path)
    p.add_argument("--out", type=Path, default=None, help="the run directory (required unless --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the devices, strategy, micro-batch, accumulation, memory per device and tokens per step; train nothing")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    p.add_argument("--force", action="store_true", help="replace a non-empty run directory")
    p.add_argument("--devices", default="1", help="devices per node, or 'auto'")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", choices=["auto", "ddp", "fsdp"], default="auto")
    p.add_argument("--accelerator", default="auto", help="auto, cpu, cuda, …")
    p.add_argument("--logger", choices=["tensorboard", "wandb"], default=None)
    p.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                   help="the plan's corpus at another path (e.g. on the cluster); refused unless its fingerprint matches")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("score", help="run every probe on every checkpoint of a run")
    p.add_argument("run", type=Path)
    p.add_argument("--force", action="store_true", help="re-score checkpoints that already have scores")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (with --devices N: auto, cpu or cuda)")
    p.add_argument("--devices", type=int, default=1, help="processes to split the items over (Lightning Fabric; the rows equal one device's)")
    p.add_argument("--block-pairs", type=int, default=None, metavar="N",
                   help="(item, probe) pairs per scoring block (default 2048); scores are identical only at equal block size")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("analyze", help="score checkpoints, estimate effects, write the report")
    p.add_argument("run", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace a non-empty report directory")
    p.add_argument("--no-score", action="store_true", help="use existing scores only")
    p.add_argument("--allow-applied-mismatch", action="store_true", help="report even if the applied log disagrees with the plan (debugging)")
    p.add_argument("--baseline-run", type=Path, default=None, metavar="RUN0",
                   help="a trained run with the same seed and no experiments: its training loss is shown beside this run's")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("canaries", help="write least-likely canaries of a checkpoint as an items file for the canary kind")
    p.add_argument("--from-checkpoint", required=True, type=Path, help="a LitGPT checkpoint directory (lit_model.pth, model_config.yaml, tokenizer)")
    p.add_argument("--out", required=True, type=Path, help="the .jsonl items file to write (must not exist)")
    p.add_argument("--n", type=int, default=100, help="canaries per length")
    p.add_argument("--length", default="32", help="tokens per canary; several as 1,8,32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", type=int, default=16, help="each token is drawn from this many least likely next tokens")
    p.set_defaults(func=_cmd_canaries)

    p = sub.add_parser("demo", help="prepare → plan → train → analyze the built-in CPU demo")
    p.add_argument("--out", type=Path, default=Path("demo-run"))
    p.add_argument("--design", default=None, metavar="NAME|FILE",
                   help="a built-in design (demo, ten: the paper's experiments at CPU scale) or a design file")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=None,
                   help="also train the same run with only the design's placebos and show its loss beside the run's "
                        "(default: on for --design ten)")
    p.add_argument("--force", action="store_true", help="replace an existing demo directory")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

    from designkit import interference_cli

    interference_cli.add_commands(sub)  # plan-interference | train-interference | analyze-interference
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        print(f"designkit: error: {exc}", file=sys.stderr)
        return InputError.exit_code
    except KeyboardInterrupt:
        print("designkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
