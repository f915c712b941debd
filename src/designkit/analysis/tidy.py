"""Collect frozen result dataclasses into one tidy DataFrame (statsmodels-style results)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pandas as pd


def to_frame(results: Iterable[Any], result_type: type) -> pd.DataFrame:
    """One row per result, one column per field of `result_type`.

    The columns are fixed by the dataclass even when `results` is empty, so a report that
    finds nothing to compare still gets a frame with the usual columns.
    """
    columns = [f.name for f in dataclasses.fields(result_type)]
    rows = [dataclasses.asdict(r) for r in results]
    return pd.DataFrame(rows, columns=columns)
