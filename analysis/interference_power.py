"""How many runs and items each interference design needs, by simulation.

    python analysis/interference_power.py [--sims 200] [--experiments 8] [--delta 0.02] [--sigma 0.1] [--tau 0]

Prints one row per design, item count and replicate count: the runs it costs, the power to
detect a cross effect of ``delta`` and a two-way interaction of ``delta`` (Holm-adjusted,
alpha 0.05), and the false-positive rate of a null cell. ``sigma`` is the item-level noise
of a score between runs, ``tau`` a run-level shift common to all items of a run (which only
replicates reveal). The simulation lives in ``designkit.analysis.interference_power_sim``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from designkit.analysis.interference_power_sim import DesignCase, power_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--experiments", type=int, default=8)
    parser.add_argument("--items", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--delta", type=float, default=0.02, help="size of the cross effect and of the interaction")
    parser.add_argument("--sigma", type=float, default=0.1, help="item-level noise sd of a score")
    parser.add_argument("--tau", type=float, default=0.0, help="run-level noise sd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cases = [
        DesignCase(design, args.experiments, items, replicates)
        for design, replicates in (("one-at-a-time", 1), ("one-at-a-time", 3), ("factorial-IV", 1), ("factorial-IV", 2), ("factorial-V", 1))
        for items in args.items
    ]
    started = time.perf_counter()
    table = power_table(cases, delta=args.delta, sigma=args.sigma, tau=args.tau, sims=args.sims, seed=args.seed)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.3f}".format):
        print(table.drop(columns="sims").to_string(index=False))
    print(f"\n{args.sims} simulations per row, delta={args.delta}, sigma={args.sigma}, tau={args.tau}: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
