"""Token budget: how much of the run each experiment and arm overwrites."""

from __future__ import annotations

import pandas as pd

from designkit.errors import InputError


def budget_table(items: pd.DataFrame, total_tokens: int, n_sequences: int, slots: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per experiment and arm.

    ``items`` needs ``experiment``, ``arm``, ``dose``, ``inserted``, ``footprint`` (payload
    tokens plus the two EOS wrappers; 0 for whole-sequence items) and ``edited_sequences``
    (the whole-sequence edits placed for each item); or, instead of ``footprint``, ``insertions``
    and ``injected_tokens`` per item (the planner's, summed over an item's payloads). Tokens count everything an insertion
    overwrites; sequences removed or noised are counted apart, as a share of the run's sequences.
    """
    controlled = items["controlled"].astype(bool) if "controlled" in items.columns else pd.Series(False, index=items.index)
    if "insertions" in items.columns:  # the planner counted each item's insertions and tokens over its payloads
        frame = items.assign(insertions=items["insertions"].where(~controlled, 0), tokens=items["injected_tokens"].where(~controlled, 0))
    else:
        frame = items.assign(
            insertions=items["dose"].where(items["inserted"] & (items["footprint"] > 0) & ~controlled, 0),
        )
        frame = frame.assign(tokens=frame["insertions"] * frame["footprint"])
    if slots is not None and len(slots):
        # a controller's doses are unknown at plan time: its slots count at full capacity, on its treated arms' first item
        capacity = slots.groupby("experiment")["n_tokens"].sum()
        frame["tokens"] = frame["tokens"].astype("int64")
        for experiment, tokens in capacity.items():
            treated = frame.index[(frame["experiment"] == experiment) & frame["inserted"]]
            if len(treated):
                frame.loc[treated[0], "tokens"] += int(tokens)
    table = (
        frame.groupby(["experiment", "arm"], sort=False)
        .agg(
            n_items=("item_id", "size"),
            dose=("dose", "first"),
            insertions=("insertions", "sum"),
            tokens=("tokens", "sum"),
            edited_sequences=("edited_sequences", "sum"),
        )
        .reset_index()
    )
    table["share_of_run"] = table["tokens"] / total_tokens
    table["edited_sequence_share"] = table["edited_sequences"] / n_sequences
    return table


def check_budget(table: pd.DataFrame, total_tokens: int, max_fraction: float, design_file, n_sequences: int) -> dict:
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
    edited = int(table["edited_sequences"].sum())
    return {
        "total_tokens": int(total_tokens),
        "injected_tokens": injected,
        "injected_fraction": fraction,
        "max_injected_fraction": max_fraction,
        # sequences removed or noised whole: not injected tokens, but a share of the run changed
        "edited_sequences": edited,
        "edited_sequence_fraction": edited / n_sequences,
    }
