"""A toy estimator, registered through the ``designkit.estimators`` entry points by the
acceptance test: the shift in medians, treated minus control, with a Mann-Whitney test and
a bootstrap CI (both scipy), and the rank-biserial correlation as effect size."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, Effect, finite_values
from designkit.analysis.estimator import EstimationTask, Estimator


class ToyMedianShift(Estimator):
    name = "toy_median_shift"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec, outcome, alpha = task.experiment, task.outcome, task.options.alpha
        effects = []
        for step, at_step in frame.groupby("step", sort=True):
            by_arm = {str(a): finite_values(g["value"].to_numpy(float)) for a, g in at_step.groupby("arm")}
            control = by_arm.get(spec.control_arm, np.empty(0))
            for arm in task.treated_arms:
                treated = by_arm.get(arm, np.empty(0))
                estimate = float(np.median(treated) - np.median(control))
                test = stats.mannwhitneyu(treated, control, alternative="two-sided")
                ci = stats.bootstrap((treated, control), lambda t, c, axis: np.median(t, axis=axis) - np.median(c, axis=axis),
                                     n_resamples=199, confidence_level=1 - alpha, method="percentile",
                                     random_state=np.random.default_rng(int(step))).confidence_interval
                effects.append(Effect(
                    experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                    control_arm=spec.control_arm, dose=task.arm_doses[arm], step=int(step), estimate=estimate,
                    ci_low=float(ci.low), ci_high=float(ci.high), p=float(test.pvalue),
                    n_treated=treated.size, n_control=control.size, treated_mean=float(treated.mean()),
                    control_mean=float(control.mean()),
                    effect_size=1 - 2 * float(test.statistic) / (treated.size * control.size) if treated.size * control.size else math.nan,
                    effect_size_name="rank_biserial", method="median_shift+mann_whitney", alpha=alpha,
                    estimator=self.name, primary=outcome.primary,
                    family=CONFIRMATORY if outcome.primary and int(step) == task.final_step else EXPLORATORY,
                ))
        return effects
