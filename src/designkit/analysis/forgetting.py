"""``forgetting_curve``: the loss gap of batches trained once, against the steps since they were seen (FC).

The kind ``forgetting`` trains each treated arm's reserve windows exactly once, at step
``params.replace_at[arm]``, and keeps matched control windows untrained. At every scored step
the estimate is treated minus control mean loss (Welch t CI and p, ``effects.compare_continuous``
on scipy), labelled with the steps since the batch was seen: ``step - replace_at[arm] - 1``
(the model scored at step s has taken s optimizer steps, so a batch of 0-based step r was
last in the update that made step r + 1); an arm of several consecutive batches counts from
its first, so its first ``batches - 1`` steps still add exposure. Rows before the replacement
are placebo checks.
The report section lists the curve and the figure draws it, one line and CI band per arm.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import numpy as np
import pandas as pd

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, Effect, compare_continuous
from designkit.analysis.estimator import EstimationTask, Estimator, ReportSection, register_estimator
from designkit.analysis.options import AnalysisOptions

SINCE_NOTE = "steps since seen: {}"
_SINCE = re.compile(r"steps since seen: (-?\d+)")


def steps_since_seen(step: int, replaced_at: int) -> int:
    """Optimizer steps taken after the one that trained the batch of 0-based step ``replaced_at``,
    for a model scored after ``step`` steps (negative: not yet trained)."""
    return int(step) - int(replaced_at) - 1


@register_estimator
class ForgettingCurve(Estimator):
    """Per treated arm and scored step: Welch difference of mean loss, treated minus control,
    with the steps since the arm's batch was trained."""

    name = "forgetting_curve"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec, outcome = task.experiment, task.outcome
        replace_at = dict(spec.params.get("replace_at", {}))
        effects = []
        for step, at_step in frame.groupby("step", sort=True):
            values = {arm: g["value"].to_numpy(float) for arm, g in at_step.groupby("arm")}
            control = values.get(spec.control_arm, np.empty(0))
            for arm in task.treated_arms:
                comparison = compare_continuous(values.get(arm, np.empty(0)), control, alpha=task.options.alpha, method="welch")
                since = steps_since_seen(int(step), replace_at[arm]) if arm in replace_at else None
                if since is not None:
                    comparison = dataclasses.replace(comparison, note="; ".join(filter(None, [SINCE_NOTE.format(since), comparison.note])))
                effects.append(Effect.from_comparison(
                    comparison, experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                    control_arm=spec.control_arm, dose=task.arm_doses[arm], step=int(step), primary=outcome.primary,
                    family=CONFIRMATORY if outcome.primary and int(step) == task.final_step else EXPLORATORY,
                    estimator=self.name,
                ))
        return effects

    @staticmethod
    def curve(effects: pd.DataFrame) -> pd.DataFrame:
        """The rows with their ``steps_since_seen`` column (NaN where the arm has no replacement step)."""
        since = effects["note"].astype(str).str.extract(_SINCE, expand=False).astype(float)
        return effects.assign(steps_since_seen=since)

    def sections(self, effects: pd.DataFrame, options: AnalysisOptions, *, source: str = "checkpoints") -> list[ReportSection]:
        curve = self.curve(effects).sort_values(["experiment", "arm", "step"])
        table = curve[["experiment", "arm", "step", "steps_since_seen", "n_treated", "n_control", "estimate", "ci_low", "ci_high", "p"]]
        return [ReportSection(
            title=f"Forgetting curves at {source} (loss of batches trained once, minus never-trained controls)",
            intro=("Each treated arm's windows replaced whole global batches and were trained exactly once. A row is the "
                   "treated minus control mean loss at one scored step, with its Welch CI; steps since seen < 0 are "
                   "placebo checks before the replacement (expected 0). A gap shrinking toward 0 is forgetting."),
            table=table.reset_index(drop=True),
        )]

    def figures(self, effects: pd.DataFrame, frame: pd.DataFrame, options: AnalysisOptions, *, source: str = "checkpoints") -> list:
        from designkit.analysis.figures import ARM_COLORS, FigureFile, _margins, new_figure, png_bytes

        out = []
        for experiment, rows in self.curve(effects).groupby("experiment", sort=False):
            fig = new_figure(4.2, 3.0)
            _margins(fig, left=0.8, top=0.25, bottom=0.55)
            ax = fig.subplots()
            ax.axhline(0.0, color="black", lw=1, ls="--")
            for i, (arm, arm_rows) in enumerate(rows.dropna(subset=["steps_since_seen"]).groupby("arm", sort=True)):
                arm_rows = arm_rows.sort_values("steps_since_seen")
                color = ARM_COLORS[i % len(ARM_COLORS)]
                x = arm_rows["steps_since_seen"].to_numpy(float)
                ax.fill_between(x, arm_rows["ci_low"], arm_rows["ci_high"], color=color, alpha=0.2, lw=0)
                ax.plot(x, arm_rows["estimate"], marker="o", ms=3, color=color, label=str(arm))
            ax.axvline(0.0, color="grey", lw=0.8, ls=":")
            ax.set_xlabel("steps since the batch was trained")
            ax.set_ylabel("loss gap (treated - control)")
            ax.legend(fontsize=7, frameon=False)
            ax.grid(alpha=0.3)
            suffix = "" if source == "checkpoints" else "_inloop"
            out.append(FigureFile(f"forgetting_{experiment}{suffix}.png", f"{experiment}: forgetting curves ({source})",
                                  f"Mean loss of the batches trained once minus the never-trained control windows, "
                                  f"with {options.ci_label} CIs, against the steps since each arm's batch was trained.",
                                  png_bytes(fig), str(experiment)))
        return out


def inloop_curve(specs, items: pd.DataFrame, inloop: pd.DataFrame | None, options: AnalysisOptions) -> tuple[list[ReportSection], list]:
    """The forgetting curves of the in-loop rows (``scores/inloop.parquet``): report sections
    and figures only (the confirmatory test stays at the checkpoints)."""
    from designkit.analysis.estimator import effects_table
    from designkit.analysis.outcome_frame import long_outcome_frame

    chosen = [spec for spec in specs if any(o.estimator == ForgettingCurve.name for o in spec.outcomes)]
    if inloop is None or inloop.empty or not chosen:
        return [], []
    frame = long_outcome_frame(items, inloop, chosen)
    effects = effects_table(frame, chosen, options)
    effects = effects[effects["estimator"] == ForgettingCurve.name]
    if effects.empty:
        return [], []
    estimator = ForgettingCurve()
    return (estimator.sections(effects, options, source="in-loop evaluations"),
            estimator.figures(effects, frame, options, source="in-loop evaluations"))
