"""`ks_normal`: does an arm's outcome follow N(0, 1)? Kolmogorov-Smirnov, one row per arm.

Some outcomes are z-scores that are standard normal when nothing was learned: the
Gaussian-watermark statistic of a text never trained on, a calibrated membership score of
an unseen item. Training on the item moves the distribution, in location or in shape, so
the claim is "this arm's scores are not N(0, 1)", not a difference of means against the
control arm. The control arm gets its row too: there it checks the calibration.

- estimate: the KS distance D = sup |F_n - Phi| (`scipy.stats.kstest`, exact p for small n);
- CI: the Dvoretzky-Kiefer-Wolfowitz band with Massart's constant. Since
  |D - D_true| <= sup |F_n - F| <= eps = sqrt(ln(2 / alpha) / (2 n)) with probability
  >= 1 - alpha, [D - eps, D + eps] clipped to [0, 1] covers the true distance
  D_true = sup |F - Phi|; it is conservative;
- effect size: D itself (`ks_distance`).

Rows are confirmatory for the primary outcome's treated arms at the final checkpoint.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, Effect, finite_values
from designkit.analysis.estimator import EstimationTask, Estimator, ReportSection, register_estimator
from designkit.analysis.options import AnalysisOptions

REFERENCE = "N(0,1)"
VS_NORMAL = "vs_standard_normal"
"""`Effect.comparison` of a KS row: the arm against the standard normal."""
METHOD = "ks_test+dkw_ci"


def ks_standard_normal(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float, str]:
    """(D, ci_low, ci_high, p, note) of the one-sample KS test of `values` against N(0, 1)."""
    x = finite_values(values)
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan, "no scored items"
    result = stats.kstest(x, "norm")
    eps = math.sqrt(math.log(2 / alpha) / (2 * x.size))
    d = float(result.statistic)
    return d, max(0.0, d - eps), min(1.0, d + eps), float(result.pvalue), ""


@register_estimator
class KsNormal(Estimator):
    """One-sample KS test of each arm's outcome against N(0, 1), with a DKW confidence band."""

    name = "ks_normal"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)
    needs_control = False
    signed = False

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec, outcome = task.experiment, task.outcome
        effects = []
        for step, at_step in frame.groupby("step", sort=True):
            by_arm = {str(arm): g["value"].to_numpy(float) for arm, g in at_step.groupby("arm")}
            for arm, dose in sorted(task.arm_doses.items()):
                values = finite_values(by_arm.get(arm, np.empty(0)))
                d, low, high, p, note = ks_standard_normal(values, task.options.alpha)
                claim = outcome.primary and int(step) == task.final_step and arm != spec.control_arm
                effects.append(Effect(
                    experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                    control_arm=REFERENCE, dose=int(dose), step=int(step), estimate=d, ci_low=low, ci_high=high,
                    p=p, n_treated=int(values.size), n_control=0,
                    treated_mean=float(values.mean()) if values.size else math.nan, control_mean=0.0,
                    effect_size=d, effect_size_name="ks_distance", method=METHOD, alpha=task.options.alpha,
                    estimator=self.name, comparison=VS_NORMAL, primary=outcome.primary,
                    family=CONFIRMATORY if claim else EXPLORATORY, note=note,
                ))
        return effects

    def figures(self, effects: pd.DataFrame, frame: pd.DataFrame, options: AnalysisOptions) -> list:
        """Per experiment: each arm's empirical CDF at the final step against the standard normal's."""
        from designkit.analysis.figures import ARM_COLORS, FigureFile, new_figure, png_bytes

        out = []
        for experiment, rows in effects.groupby("experiment", sort=False):
            step = int(rows["step"].max())
            at_step = frame[(frame["experiment"] == experiment) & (frame["step"] == step)]
            outcomes = list(dict.fromkeys(rows["outcome"]))
            fig = new_figure(3.6 * len(outcomes), 3.0)
            for ax, outcome in zip(np.atleast_1d(fig.subplots(1, len(outcomes), squeeze=False)).ravel(), outcomes):
                values = at_step[at_step["outcome"] == outcome]
                grid = np.linspace(-4, 4, 200)
                ax.plot(grid, stats.norm.cdf(grid), color="black", lw=1, ls="--", label=REFERENCE)
                for i, (arm, arm_values) in enumerate(values.groupby("arm")["value"]):
                    x = np.sort(finite_values(arm_values.to_numpy(float)))
                    ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", color=ARM_COLORS[i % len(ARM_COLORS)], label=arm)
                ax.set_title(outcome, fontsize=10)
                ax.legend(fontsize=7, frameon=False)
                ax.grid(alpha=0.3)
            fig.subplots_adjust(bottom=0.15, top=0.85, wspace=0.3)
            out.append(FigureFile(f"ks_normal_{experiment}.png", f"{experiment}: distance from N(0, 1)",
                                  f"Empirical CDF of each arm at step {step} against the standard normal (dashed); "
                                  "the KS distance D is the largest vertical gap.", png_bytes(fig), str(experiment)))
        return out

    def sections(self, effects: pd.DataFrame, options: AnalysisOptions) -> list[ReportSection]:
        final = effects[effects["step"] == effects.groupby("experiment")["step"].transform("max")]
        table = final[["experiment", "outcome", "arm", "dose", "step", "n_treated", "treated_mean", "estimate",
                       "ci_low", "ci_high", "p", "p_adj"]].rename(columns={"estimate": "ks_distance", "n_treated": "n",
                                                                           "treated_mean": "mean"})
        return [ReportSection(
            title="Distance from N(0, 1) (Kolmogorov-Smirnov)",
            intro=(f"Each arm's outcome against the standard normal at the final step: KS distance D with a "
                   f"{options.ci_label} (Dvoretzky-Kiefer-Wolfowitz), KS p and its adjusted p. The control arm checks "
                   "that untrained scores are calibrated."),
            table=table.reset_index(drop=True),
        )]
