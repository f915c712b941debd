"""Synthetic long outcome frames shared by the analysis tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from designkit.analysis import ArmSpec, ExperimentSpec, OutcomeSpec

from .frames import long_frame


@pytest.fixture
def two_experiments() -> tuple[pd.DataFrame, list[ExperimentSpec]]:
    """`contam` (binary primary `correct`, continuous `margin`, arms control/x1/x4, 2 steps)
    and `canary` (continuous primary `loss`, control/x16, 2 steps)."""
    rng = np.random.default_rng(7)
    steps = (100, 200)
    contam_arms = {"control": (0, False), "x1": (1, True), "x4": (4, True)}
    correct = {arm: (rng.random((2, 40)) < p) for arm, p in (("control", .25), ("x1", .4), ("x4", .7))}
    margin = {arm: rng.normal(mu, 1, (2, 40)) for arm, mu in (("control", 0), ("x1", .3), ("x4", 1))}
    contam = long_frame("contam", contam_arms, {"correct": correct, "margin": margin}, steps)
    canary_arms = {"control": (0, False), "x16": (16, True)}
    loss = {arm: rng.normal(mu, 1, (2, 25)) for arm, mu in (("control", 5), ("x16", 3))}
    canary = long_frame("canary", canary_arms, {"loss": loss}, steps, first_item=1000)
    specs = [
        ExperimentSpec(
            name="contam", control_arm="control",
            outcomes=(OutcomeSpec("correct", "binary", primary=True),
                      OutcomeSpec("margin", "continuous")),
            arms=(ArmSpec("control", 0, False), ArmSpec("x1", 1, True), ArmSpec("x4", 4, True)),
        ),
        ExperimentSpec(
            name="canary", control_arm="control",
            outcomes=(OutcomeSpec("loss", "continuous", primary=True, expected_sign=-1),),
        ),
    ]
    return pd.concat([contam, canary], ignore_index=True), specs
