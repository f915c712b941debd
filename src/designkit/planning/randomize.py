"""Seeded assignment of items to arms with exact shares, optionally stratified.

Arm sizes are fixed first by the largest-remainder rule, so every arm gets the floor or
the ceiling of ``n × share`` and the rounding is reported. Items are then shuffled within
strata and laid along a low-discrepancy sequence of arm labels, so each stratum's arm
counts are also within one of proportional.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Assignment:
    arm_of_item: np.ndarray
    """Index into the arm list, one per item."""
    rounding: pd.DataFrame
    """One row per arm: share, exact ``n × share``, assigned count."""


def largest_remainder(n: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``n``, each the floor or ceiling of ``n × share``.

    Ties in the remainders go to the earlier arm, so the result is deterministic.
    """
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    order = np.lexsort((np.arange(len(shares)), -(exact - counts)))
    counts[order[:short]] += 1
    return counts


def _low_discrepancy_labels(counts: np.ndarray) -> np.ndarray:
    """Arm labels with exact ``counts``, interleaved so every run of labels is near-proportional."""
    labels = np.repeat(np.arange(len(counts)), counts)
    # unit j of arm a sits at the midpoint (j + 0.5) / counts[a] of the unit interval
    position = np.concatenate([(np.arange(c) + 0.5) / c for c in counts if c > 0])
    return labels[np.lexsort((labels, position))]


def assign_arms(
    n_items: int,
    arm_names: list[str],
    shares: list[float],
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
) -> Assignment:
    shares_arr = np.asarray(shares, dtype=np.float64)
    counts = largest_remainder(n_items, shares_arr)
    labels = _low_discrepancy_labels(counts)
    # a random rotation keeps the exact counts and low discrepancy, but which stratum
    # gets an arm's rounded-up unit is left to chance
    labels = np.roll(labels, int(rng.integers(n_items))) if n_items else labels
    shuffle_key = rng.permutation(n_items)
    if strata is None:
        order = shuffle_key
    else:
        codes = pd.factorize(pd.Series(strata, dtype="string"), sort=True)[0]
        order = np.lexsort((shuffle_key, codes))
    arm_of_item = np.empty(n_items, dtype=np.int64)
    arm_of_item[order] = labels
    rounding = pd.DataFrame(
        {
            "arm": arm_names,
            "share": shares_arr,
            "exact": n_items * shares_arr / shares_arr.sum(),
            "assigned": counts,
        }
    )
    return Assignment(arm_of_item=arm_of_item, rounding=rounding)
