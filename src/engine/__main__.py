"""``python -m engine train PLAN --out RUN [...]``: the engine's own command line.

``designkit train`` calls the same function (``engine.train.train``). This entry point
exists for tests and for launchers (torchrun, srun) that want a module to run.
"""

from __future__ import annotations

import argparse
import sys

from designkit.errors import InputError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Train a designkit plan.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train PLAN into the run dir --out")
    train.add_argument("plan", help="plan directory (made by designkit plan)")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue from the run dir's last complete checkpoint")
    train.add_argument("--force", action="store_true", help="replace an existing run dir")
    train.add_argument("--devices", default="1", help="devices per node: an integer or 'auto' (default 1)")
    train.add_argument("--num-nodes", type=int, default=1)
    train.add_argument("--strategy", default="auto", choices=["auto", "ddp", "fsdp"])
    train.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda", "gpu"])
    train.add_argument("--logger", default=None, choices=["tensorboard", "wandb"])
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from engine.train import train

    try:
        summary = train(
            args.plan,
            args.out,
            resume=args.resume,
            force=args.force,
            devices=args.devices,
            num_nodes=args.num_nodes,
            strategy=args.strategy,
            accelerator=args.accelerator,
            logger=args.logger,
            show_progress=not args.no_progress,
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return InputError.exit_code
    if summary.global_rank == 0:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
