"""`cluster_robust`: treated minus control on probe instances, standard errors clustered by item.

An item (the randomized unit) may have several probe instances: test problems of a
reasoning template, held-out prompts of a poisoning trigger. Instances of one item share
its treatment, so they are not independent observations. Outcomes declared with
`aggregate: cluster_robust` keep the instances and regress the outcome on a treated
indicator (OLS; for a binary outcome, the linear probability model, so the estimate is a
difference in proportions over instances), with the cluster-robust sandwich covariance by
item (CR1, statsmodels' `cov_type="cluster"`) and t inference on clusters − 1 degrees of
freedom (Cameron & Miller 2015, "A Practitioner's Guide to Cluster-Robust Inference").
With one instance per item it is Welch-like OLS with heteroskedasticity-robust errors.

The default, `aggregate: mean`, averages instances to the item first and tests items
(`two_sample`); this estimator weights instances equally instead, which differs when
items have unequal numbers of instances.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import statsmodels.api as sm

from designkit.analysis.effects import Comparison, Effect, cohen_d
from designkit.analysis.estimator import EstimationTask, Estimator, register_estimator

METHOD = "OLS on probe instances, CR1 errors clustered by item, t(clusters - 1)"


def cluster_robust_difference(values: np.ndarray, treated: np.ndarray, cluster: np.ndarray, alpha: float) -> Comparison:
    """Treated minus control mean of instance values, with a cluster-robust CI and p."""
    keep = np.isfinite(values)
    values, treated, cluster = values[keep], treated[keep].astype(bool), cluster[keep]
    n_t, n_c = len(np.unique(cluster[treated])), len(np.unique(cluster[~treated]))
    mean_t = float(values[treated].mean()) if treated.any() else math.nan
    mean_c = float(values[~treated].mean()) if (~treated).any() else math.nan
    base = dict(estimate=mean_t - mean_c, n_treated=n_t, n_control=n_c, treated_mean=mean_t, control_mean=mean_c,
                effect_size=cohen_d(values[treated], values[~treated]) if treated.any() and (~treated).any() else math.nan,
                effect_size_name="cohen_d", method=METHOD, alpha=alpha)
    if min(n_t, n_c) < 2:
        return Comparison(**base, ci_low=math.nan, ci_high=math.nan, p=math.nan, note="fewer than 2 items in an arm")
    if np.ptp(values) == 0:
        return Comparison(**base, ci_low=math.nan, ci_high=math.nan, p=math.nan, note="every instance has the same value")
    design = sm.add_constant(treated.astype(float), has_constant="add")
    groups = pd.factorize(cluster)[0]
    fit = sm.OLS(values, design).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    low, high = fit.conf_int(alpha=alpha)[1]
    return Comparison(**{**base, "estimate": float(fit.params[1])}, ci_low=float(low), ci_high=float(high), p=float(fit.pvalues[1]))


@register_estimator
class ClusterRobust(Estimator):
    """Every treated arm against the control arm at every checkpoint, on instance-level rows."""

    name = "cluster_robust"

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec = task.experiment
        rows = task.instances if task.instances is not None else frame.assign(instance=0)  # no instances: items are their own
        effects = []
        for step, at_step in rows.groupby("step", sort=True):
            control = at_step[at_step["arm"] == spec.control_arm]
            for arm in task.treated_arms:
                both = pd.concat([at_step[at_step["arm"] == arm], control])
                comparison = cluster_robust_difference(
                    both["value"].to_numpy(float), (both["arm"] == arm).to_numpy(), both["item_index"].to_numpy(), task.options.alpha,
                )
                effects.append(task.effect(comparison, arm, int(step), self.name))
        return effects

    outcome_types: ClassVar[tuple[str, ...]] = ("binary", "continuous")
