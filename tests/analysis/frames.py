"""Synthetic long outcome frames for the analysis tests (a normal module, not conftest)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def long_frame(
    experiment: str,
    arms: dict[str, tuple[int, bool]],
    outcomes: dict[str, dict[str, np.ndarray]],
    steps: tuple[int, ...],
    first_item: int = 0,
) -> pd.DataFrame:
    """Rows for every arm/outcome/step; `outcomes[name][arm]` is an (n_steps, n_items) array."""
    rows = []
    item = first_item
    item_of_arm = {}
    for arm in arms:
        n_items = next(iter(outcomes.values()))[arm].shape[1]
        item_of_arm[arm] = np.arange(item, item + n_items)
        item += n_items
    for outcome, by_arm in outcomes.items():
        for arm, (dose, inserted) in arms.items():
            values = by_arm[arm]
            for s, step in enumerate(steps):
                rows.append(pd.DataFrame({
                    "experiment": experiment, "arm": arm, "dose": dose, "inserted": inserted,
                    "item_index": item_of_arm[arm], "step": step, "outcome": outcome,
                    "value": values[s].astype(float),
                }))
    return pd.concat(rows, ignore_index=True)
