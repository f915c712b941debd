"""Token budget: how much of the run each experiment and arm overwrites."""

from __future__ import annotations

import pandas as pd

from designkit.errors import InputError


def budget_table(items: pd.DataFrame, total_tokens: int) -> pd.DataFrame:
    """One row per experiment and arm.

    ``items`` needs ``experiment``, ``arm``, ``dose``, ``inserted`` and ``footprint`` (payload
    tokens plus the two EOS wrappers). Tokens count everything an insertion overwrites.
    """
    frame = items.assign(
        insertions=items["dose"].where(items["inserted"], 0),
    )
    frame = frame.assign(tokens=frame["insertions"] * frame["footprint"])
    table = (
        frame.groupby(["experiment", "arm"], sort=False)
        .agg(n_items=("item_id", "size"), dose=("dose", "first"), insertions=("insertions", "sum"), tokens=("tokens", "sum"))
        .reset_index()
    )
    table["share_of_run"] = table["tokens"] / total_tokens
    return table


def check_budget(table: pd.DataFrame, total_tokens: int, max_fraction: float, design_file) -> dict:
    injected = int(table["tokens"].sum())
    fraction = injected / total_tokens
    allowed = max_fraction * total_tokens
    if injected > allowed:
        over = injected - allowed
        raise InputError(
            design_file,
            "run.max_injected_fraction",
            f"expected at most {max_fraction:.2%} of the run's {total_tokens:,} tokens injected, "
            f"the plan injects {injected:,} ({fraction:.2%}): {over:,.0f} tokens "
            f"({(fraction - max_fraction) * 100:.2f} percentage points) over",
        )
    return {
        "total_tokens": int(total_tokens),
        "injected_tokens": injected,
        "injected_fraction": fraction,
        "max_injected_fraction": max_fraction,
    }
