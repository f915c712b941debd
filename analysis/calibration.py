"""Calibration study of designkit's estimators: A/A false-positive rate, CI coverage, power.

    python analysis/calibration.py [--replicates 1000] [--seed 0] [--quick] [--z 2]

Prints one row per check and exits 1 if any value falls outside its bounds. The
simulation lives in `designkit.analysis.calibration_sim` so the tests can run a reduced
version; this script only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from designkit.analysis.calibration_sim import run_calibration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000, help="Monte-Carlo replicates per check (about 5 min on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="200 replicates, dose-response at 30 items per dose, no bootstrap")
    parser.add_argument("--z", type=float, default=None,
                        help="band half-width in MCSE (default: Bonferroni over the checks)")
    args = parser.parse_args(argv)

    replicates = 200 if args.quick else args.replicates
    started = time.perf_counter()
    table = run_calibration(
        replicates, args.seed, z=args.z, glm_sizes=(30,) if args.quick else None,
        bootstrap=not args.quick,
    )
    elapsed = time.perf_counter() - started

    shown = table.drop(columns=["replicates", "z"])
    with pd.option_context("display.width", 200, "display.max_columns", None,
                           "display.max_colwidth", 48, "display.float_format", "{:.4f}".format):
        print(shown.to_string(index=False))
    outside = int((~table["within_2mcse"]).sum())
    failed = table[~table["passed"]]
    print(
        f"\n{len(table)} checks, {replicates} replicates each, seed {args.seed}, {elapsed:.0f} s. "
        f"Bands: target +- {table['z'].iloc[0]:.2f} MCSE (coverage at least +-0.02, power +0.03)."
    )
    print(
        f"Outside +-2 MCSE: {outside} (about {0.05 * len(table):.1f} expected by chance if "
        f"every estimator is calibrated)."
    )
    if failed.empty:
        print("All checks passed.")
        return 0
    print(f"FAILED: {', '.join(failed['check'] + ' n=' + failed['n_per_arm'].astype(str) + ' ' + failed['metric'])}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
