"""Power of the interference designs by simulation: runs and items needed to detect a given effect.

Each simulated design's score table is analysed with the estimators the report uses
(``designkit.analysis.interference``), so the power is that of the shipped tests, Holm
and all. The scores of experiment 0's items in each run are

    item baseline + run shift (sd ``tau``) + item noise (sd ``sigma``)
    + ``delta`` if experiment 1 is on                 (a cross effect)
    + ``delta`` if experiments 0 and 2 are both on    (a two-way interaction)

and experiment 3 has no effect (its cell gives the false-positive rate). One-at-a-time
cannot separate the interaction from the others' cross effects (it only shows in "all"
minus "0 alone"); the factorial estimates it, aliased at resolution IV with other two-way
interactions that are zero here. Holm runs over experiment 0's cells only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from designkit.analysis.interference import OutcomeInfo, factorial_cells, one_at_a_time_cells
from designkit.planning.interference import factorial_matrix, one_at_a_time_runs

ALPHA = 0.05


@dataclass(frozen=True)
class DesignCase:
    design: str
    """``one-at-a-time``, ``factorial-IV`` or ``factorial-V``."""
    n_experiments: int
    items: int
    replicates: int = 1


def design_runs(case: DesignCase) -> list[dict]:
    factors = [f"e{i}" for i in range(case.n_experiments)]
    if case.design == "one-at-a-time":
        base = [(name, list(on)) for name, on in one_at_a_time_runs(factors)]
    else:
        matrix, _ = factorial_matrix(case.n_experiments, 4 if case.design == "factorial-IV" else 5)
        base = [(f"f{k}", [f for f, level in zip(factors, row) if level > 0]) for k, row in enumerate(matrix)]
    return [{"name": f"{name}-r{r}", "on": on, "replicate": r} for r in range(case.replicates) for name, on in base]


def simulate_scores(runs: list[dict], items: int, delta: float, sigma: float, tau: float, rng: np.random.Generator) -> pd.DataFrame:
    base = rng.normal(0, 1, items)
    parts = []
    for run in runs:
        on = set(run["on"])
        value = base + rng.normal(0, tau) + rng.normal(0, sigma, items)
        value = value + delta * ("e1" in on) + delta * ({"e0", "e2"} <= on)
        parts.append(pd.DataFrame({"run": run["name"], "replicate": run["replicate"], "experiment": "e0", "outcome": "y",
                                   "item_index": np.arange(items), "value": value}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def power_of(case: DesignCase, *, delta: float, sigma: float, tau: float, sims: int, seed: int = 0) -> dict:
    """Detection rates (Holm-adjusted p < alpha) of the cross effect, the interaction and a null cell."""
    design_label = zlib.crc32(case.design.encode())  # str hash() changes between processes
    rng = np.random.default_rng([seed, case.n_experiments, case.items, case.replicates, design_label])
    runs = design_runs(case)
    factors = [f"e{i}" for i in range(case.n_experiments)]
    outcomes = [OutcomeInfo("e0", "y", "continuous", True)]
    analyse = one_at_a_time_cells if case.design == "one-at-a-time" else factorial_cells
    hits = {"cross": 0, "interaction": 0, "null": 0}
    for _ in range(sims):
        cells = analyse(simulate_scores(runs, case.items, delta, sigma, tau, rng), runs, factors, outcomes, {"e0": delta / 2}, ALPHA)
        significant = cells["p_adj"] < ALPHA
        hits["cross"] += bool(significant[cells["source"] == "e1"].any())
        hits["null"] += bool(significant[cells["source"] == "e3"].any())
        chain = cells["source"].eq("e0:e2") | cells["aliases"].fillna("").str.contains(r"\be0:e2\b")
        hits["interaction"] += bool(significant[chain].any())
    rates = {k: v / sims for k, v in hits.items()}
    if case.design == "one-at-a-time":
        rates["interaction"] = float("nan")  # not estimable: it only shows in "all" minus "0 alone"
    return {"design": case.design, "experiments": case.n_experiments, "runs": len(runs), "items": case.items,
            "replicates": case.replicates, "power_cross": rates["cross"], "power_interaction": rates["interaction"],
            "false_positive": rates["null"], "sims": sims}  # fmt: skip


def power_table(cases: list[DesignCase], *, delta: float, sigma: float, tau: float, sims: int, seed: int = 0) -> pd.DataFrame:
    import gc

    gc.freeze()  # statsmodels' Holm calls gc.collect(); with the heap frozen that costs little
    try:
        return pd.DataFrame([power_of(c, delta=delta, sigma=sigma, tau=tau, sims=sims, seed=seed) for c in cases])
    finally:
        gc.unfreeze()
