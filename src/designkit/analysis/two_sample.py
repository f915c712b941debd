"""The built-in treated-vs-control estimators: every treated arm against the control arm.

Items are randomized into arms (Bordt & Pawelczyk 2025), so at any checkpoint a treated
arm and the control arm are two independent samples; `effects.compare_binary` and
`effects.compare_continuous` hold the statistics. `newcombe` is the default for binary
outcomes, `welch` or `bootstrap` (the design's `analysis.continuous_method`) for
continuous ones.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from designkit.analysis.effects import (
    Comparison,
    Effect,
    compare_binary,
    compare_continuous,
    labelled_seed,
)
from designkit.analysis.estimator import EstimationTask, Estimator, register_estimator
from designkit.analysis.options import AnalysisOptions


class TwoSampleEstimator(Estimator):
    """Treated minus control at every checkpoint, one row per treated arm.

    Subclasses implement `compare`; it also serves the window contrasts (late minus early
    arm at equal dose, `over_training`).
    """

    def compare(self, treated: np.ndarray, control: np.ndarray, options: AnalysisOptions, seed: int) -> Comparison:
        raise NotImplementedError

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec, outcome = task.experiment, task.outcome
        effects = []
        for step, at_step in frame.groupby("step", sort=True):
            values_by_arm = {arm: g["value"].to_numpy(float) for arm, g in at_step.groupby("arm")}
            control = values_by_arm.get(spec.control_arm, np.empty(0))
            for arm in task.treated_arms:
                # the seed depends on the row's labels only, so a row's result does not
                # depend on which other experiments are in the table
                seed = labelled_seed(task.options.seed, spec.name, outcome.name, arm, int(step))
                comparison = self.compare(values_by_arm.get(arm, np.empty(0)), control, task.options, seed)
                effects.append(task.effect(comparison, arm, int(step), self.name))
        return effects


@register_estimator
class Newcombe(TwoSampleEstimator):
    """Difference in proportions: Newcombe hybrid-score CI, Miettinen-Nurminen score test, Cohen's h."""

    name = "newcombe"
    outcome_types: ClassVar[tuple[str, ...]] = ("binary",)

    def compare(self, treated: np.ndarray, control: np.ndarray, options: AnalysisOptions, seed: int) -> Comparison:
        return compare_binary(treated, control, alpha=options.alpha)


@register_estimator
class Welch(TwoSampleEstimator):
    """Difference in means: Welch t CI and test, Cohen's d."""

    name = "welch"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)

    def compare(self, treated: np.ndarray, control: np.ndarray, options: AnalysisOptions, seed: int) -> Comparison:
        return compare_continuous(treated, control, alpha=options.alpha, method="welch")


@register_estimator
class Bootstrap(TwoSampleEstimator):
    """Difference in means: BCa bootstrap CI and a Welch-t permutation test, Cohen's d."""

    name = "bootstrap"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)

    def compare(self, treated: np.ndarray, control: np.ndarray, options: AnalysisOptions, seed: int) -> Comparison:
        return compare_continuous(treated, control, alpha=options.alpha, method="bootstrap", seed=seed,
                                  n_resamples=options.n_resamples)
