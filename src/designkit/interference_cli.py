"""The interference commands of ``designkit``: plan-interference | train-interference | analyze-interference.

``plan-interference`` is planner-only (no torch); the other two import the engine lazily,
as ``designkit train`` and ``designkit analyze`` do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from designkit.errors import InputError


def _margin(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        return name, float(value) if sep else float("nan")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}") from None


def _cmd_plan_interference(args: argparse.Namespace) -> None:
    from designkit.planning.interference import format_summary, plan_interference

    margins = dict(args.margin or [])
    bad = [name for name, value in margins.items() if not value > 0]
    if bad:
        raise InputError(None, "margin", f"expected NAME=VALUE with a positive VALUE, got {bad[0]!r}")
    result = plan_interference(
        args.parent_plan,
        args.from_checkpoint,
        args.out,
        steps=args.steps,
        design=args.design,
        resolution=args.resolution,
        share=args.share,
        replicates=args.replicates,
        optimizer="fresh" if args.fresh_optimizer is not None else "parent",
        warmup_steps=args.fresh_optimizer or 0,
        margins=margins,
        force=args.force,
    )
    print(format_summary(result.meta))
    print(f"\n{len(result.runs)} sub-plans written to {result.path / 'plans'}")


def _cmd_train_interference(args: argparse.Namespace) -> None:
    from designkit.planning.interference import subrun_commands

    if args.print_commands:
        print("\n".join(subrun_commands(args.dir)))
        return
    from engine.interference_runs import train_all

    for line in train_all(args.dir, resume=args.resume, accelerator=args.accelerator, show_progress=not args.quiet):
        print(line, flush=True)


def _cmd_analyze_interference(args: argparse.Namespace) -> None:
    from designkit.analysis.interference_report import check_report_dir, write_interference_report

    check_report_dir(args.out, args.force)
    if not args.no_score:
        from engine.interference_runs import score_all

        score_all(args.dir, device=args.device, show_progress=not args.quiet)
    report = write_interference_report(args.dir, args.out, force=args.force)
    print(report.console_summary())


def add_commands(sub) -> None:
    p = sub.add_parser("plan-interference", help="derive continuation sub-plans that test whether experiments interfere")
    p.add_argument("parent_plan", type=Path)
    p.add_argument("--from-checkpoint", required=True, type=Path, metavar="CKPT", help="RUN/checkpoints/step-XXXXXXXX of the parent run")
    p.add_argument("--steps", required=True, type=int, help="optimizer steps of every sub-run")
    p.add_argument("--design", required=True, choices=["one-at-a-time", "factorial"])
    p.add_argument("--resolution", type=int, choices=[4, 5], default=4, help="factorial: IV (default) or V")
    p.add_argument("--share", type=float, default=0.01, help="share of a sub-run's tokens per switched-on experiment (default 0.01)")
    p.add_argument("--replicates", type=int, default=1, help="repeat every run with another base-data seed")
    p.add_argument("--fresh-optimizer", type=int, metavar="WARMUP", default=None,
                   help="a new AdamW warmed up over WARMUP steps instead of the parent's optimizer state")
    p.add_argument("--margin", type=_margin, action="append", metavar="NAME=VALUE",
                   help="equivalence margin of an experiment (overrides its interference_margin)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace an existing interference directory")
    p.set_defaults(func=_cmd_plan_interference)

    p = sub.add_parser("train-interference", help="train every sub-plan of an interference directory, in sequence")
    p.add_argument("dir", type=Path)
    p.add_argument("--resume", action="store_true", help="skip finished runs, resume interrupted ones")
    p.add_argument("--print-commands", action="store_true", help="print one designkit train command per sub-run instead")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train_interference)

    p = sub.add_parser("analyze-interference", help="score every sub-run and test every cross effect")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace a non-empty report directory")
    p.add_argument("--no-score", action="store_true", help="use existing scores only")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_analyze_interference)
