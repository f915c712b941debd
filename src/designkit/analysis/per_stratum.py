"""`per_stratum`: treated minus control within each stratum of the items.

A kind that runs several conditions in one experiment (canary type × length × carrier, a
reasoning problem's operation) stores each item's condition in `items.parquet`'s
`stratum`; randomization is stratified by it (`stratify_by`), so inside a stratum the arms
are again two randomized samples. This estimator repeats the default two-sample
comparison of the outcome's type (`newcombe` for binary, the design's
`analysis.continuous_method` for continuous) in every stratum, one row per stratum,
treated arm and checkpoint. Its `comparison` is `stratum:NAME`. Rows are exploratory:
the pooled effect, under the outcome's own estimator, is the confirmatory claim.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from designkit.analysis.effects import EXPLORATORY, Effect, compare_binary, compare_continuous, labelled_seed
from designkit.analysis.estimator import EstimationTask, Estimator, ReportSection, register_estimator
from designkit.analysis.options import AnalysisOptions

PREFIX = "stratum:"


@register_estimator
class PerStratum(Estimator):
    """Treated minus control in each stratum: Newcombe (binary) or Welch/bootstrap (continuous)."""

    name = "per_stratum"

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec, outcome, options = task.experiment, task.outcome, task.options
        strata = frame["stratum"].fillna("") if "stratum" in frame.columns else pd.Series("", index=frame.index)
        effects = []
        for (stratum, step), rows in frame.groupby([strata, "step"], sort=True):
            by_arm = {str(a): g["value"].to_numpy(float) for a, g in rows.groupby("arm")}
            control = by_arm.get(spec.control_arm, np.empty(0))
            for arm in task.treated_arms:
                treated = by_arm.get(arm, np.empty(0))
                if outcome.type == "binary":
                    result = compare_binary(treated, control, alpha=options.alpha)
                else:
                    seed = labelled_seed(options.seed, spec.name, outcome.name, arm, int(step), stratum)
                    result = compare_continuous(treated, control, alpha=options.alpha, method=options.continuous_method,
                                                seed=seed, n_resamples=options.n_resamples)
                effects.append(Effect.from_comparison(
                    result, experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                    control_arm=spec.control_arm, dose=int(task.arm_doses[arm]), step=int(step),
                    primary=outcome.primary, family=EXPLORATORY, estimator=self.name,
                    comparison=f"{PREFIX}{stratum or '(none)'}",
                ))
        return effects

    def sections(self, effects: pd.DataFrame, options: AnalysisOptions) -> list[ReportSection]:
        final = effects[effects["step"] == effects.groupby("experiment")["step"].transform("max")]
        table = final.assign(stratum=final["comparison"].str.removeprefix(PREFIX))[
            ["experiment", "outcome", "stratum", "arm", "dose", "n_treated", "n_control", "estimate", "ci_low", "ci_high", "p", "p_adj"]]
        return [ReportSection(
            title="Effects by stratum",
            intro=(f"Treated minus control within each stratum (condition) at the final step, with a {options.ci_label}; "
                   "exploratory, adjusted with the other exploratory rows."),
            table=table.sort_values(["experiment", "outcome", "stratum", "dose"]).reset_index(drop=True),
        )]
