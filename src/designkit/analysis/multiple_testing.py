"""Multiplicity adjustment of effect p-values within pre-declared families.

The confirmatory family holds each experiment's primary outcome at its final checkpoint,
every treated arm; these are the pre-registered claims of the run. Everything else
(secondary outcomes, earlier checkpoints, window contrasts) is exploratory and adjusted
as a separate family, so exploring more never weakens the confirmatory tests.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, VS_CONTROL

METHODS: tuple[str, ...] = ("holm", "fdr_bh", "bonferroni", "hommel", "fdr_by")


def assign_families(effects: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with `family` set from `primary`, `step` and `comparison`.

    Confirmatory: primary outcome, treated arm vs control, at the experiment's last step.
    """
    out = effects.copy()
    final_step = out.groupby("experiment")["step"].transform("max")
    confirmatory = (
        out["primary"].astype(bool)
        & (out["step"] == final_step)
        & (out["comparison"] == VS_CONTROL)
    )
    out["family"] = np.where(confirmatory, CONFIRMATORY, EXPLORATORY)
    return out


def adjust(effects: pd.DataFrame, method: str | Mapping[str, str] = "holm") -> pd.DataFrame:
    """Return a copy of `effects` with `p_adj` filled within each `family`.

    `method` is a `multipletests` method for every family, or a mapping family -> method
    (e.g. Holm for confirmatory, BH for exploratory). Rows without a family get one from
    `assign_families`. Rows whose p is NaN (an undefined test) stay NaN and do not count
    toward their family's size: a hypothesis that cannot be tested can never be rejected.
    """
    out = effects.copy()
    if "family" not in out.columns or (out["family"].fillna("") == "").any():
        out = assign_families(out)
    p = out["p"].to_numpy(float)
    p_adj = np.full(len(out), np.nan)
    # Positional indices, so a caller's duplicated index (e.g. after pd.concat) is harmless.
    for family, positions in out.groupby("family").indices.items():
        family_method = method.get(str(family), "holm") if isinstance(method, Mapping) else method
        if family_method not in METHODS:
            raise ValueError(f"expected a multiple-testing method in {METHODS}, got {family_method!r}")
        testable = positions[~np.isnan(p[positions])]
        if testable.size:
            p_adj[testable] = multipletests(p[testable], method=family_method)[1]
    out["p_adj"] = p_adj
    return out


__all__ = ["CONFIRMATORY", "EXPLORATORY", "METHODS", "adjust", "assign_families"]
