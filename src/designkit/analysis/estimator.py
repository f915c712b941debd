"""The estimator contract: one registered class turns one outcome's items into effect rows.

An outcome (declared by its kind, carried in `plan.json`) may name its estimator; without
one the default follows the outcome type: binary -> `newcombe` (difference in
proportions), continuous -> the design's `analysis.continuous_method` (`welch` or
`bootstrap`). An estimator receives the long outcome frame of one experiment's outcome
(every arm and checkpoint, columns `LONG_FRAME_COLUMNS`) and returns tidy `Effect` rows:
estimate, CI, p, effect size, notes. It may also add report sections and figures drawn
from its own rows, and red flags (one line each, shown first in the report and the summary)
when its rows show a problem, such as a miscalibrated statistic (`watermark_calibration`).

Register a class with `@register_estimator` (the `ESTIMATORS` registry, a
`designkit.registry.Registry`); installed packages register theirs under the
`designkit.estimators` entry-point group, and an outcome may name one by import path
(`mypkg.stats:MyEstimator`). Importing that module runs its code, like any kind a design
names.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, LONG_FRAME_COLUMNS, Comparison, Effect, effects_frame
from designkit.plan_types import OUTCOME_TYPES, ExperimentSpec, OutcomeSpec
from designkit.analysis.options import AnalysisOptions
from designkit.errors import InputError
from designkit.registry import Registry

ENTRY_POINT_GROUP = "designkit.estimators"


@dataclass(frozen=True)
class EstimationTask:
    """What an estimator knows besides the items: the experiment, the outcome, the options."""

    experiment: ExperimentSpec
    outcome: OutcomeSpec
    options: AnalysisOptions
    arm_doses: Mapping[str, int]
    """Every arm of the experiment (declared or scored) and its dose."""
    final_step: int
    """The experiment's last scored checkpoint: where the confirmatory family lives."""
    instances: pd.DataFrame | None = None
    """The outcome's instance-level rows (`LONG_FRAME_COLUMNS` plus `instance`: one row per
    probe instance, not averaged per item), for estimators that model the clustering of
    instances in items; None when the caller has none."""

    @property
    def treated_arms(self) -> list[str]:
        return sorted(a for a in self.arm_doses if a != self.experiment.control_arm)

    def effect(self, comparison: Comparison, arm: str, step: int, estimator: str) -> Effect:
        """The effect row of `arm` against control at `step`; confirmatory for the primary outcome at the final step."""
        spec, outcome = self.experiment, self.outcome
        confirmatory = outcome.primary and step == self.final_step
        return Effect.from_comparison(
            comparison, experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
            control_arm=spec.control_arm, dose=self.arm_doses[arm], step=step, primary=outcome.primary,
            family=CONFIRMATORY if confirmatory else EXPLORATORY, estimator=estimator,
        )


@dataclass(frozen=True)
class ReportSection:
    """A titled table an estimator adds to the report (rendered like every other table)."""

    title: str
    intro: str
    table: pd.DataFrame = field(repr=False)


class Estimator(ABC):
    """Subclass per estimator and decorate it with `@register_estimator`."""

    name: ClassVar[str]
    """The name outcomes use to ask for this estimator (plan.json `estimator`)."""
    outcome_types: ClassVar[tuple[str, ...]] = OUTCOME_TYPES
    """Outcome types the estimator accepts."""
    needs_control: ClassVar[bool] = True
    """Whether it compares against the control arm (experiments without one are skipped)."""
    signed: ClassVar[bool] = True
    """Whether the estimate's sign is a direction (a difference is; a distance is not), so a
    significant estimate against the outcome's `expected_sign` is reported as opposite."""

    @abstractmethod
    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        """Effect rows of one outcome; `frame` holds only that experiment's outcome."""

    def sections(self, effects: pd.DataFrame, options: AnalysisOptions) -> list[ReportSection]:
        """Report sections from this estimator's rows of the effects table (none by default)."""
        return []

    def figures(self, effects: pd.DataFrame, frame: pd.DataFrame, options: AnalysisOptions) -> list:
        """`figures.FigureFile`s from this estimator's rows (none by default)."""
        return []

    def red_flags(self, effects: pd.DataFrame, options: AnalysisOptions) -> list[str]:
        """One line per problem in this estimator's rows that the report must show first
        (e.g. a test statistic found miscalibrated); none by default."""
        return []


ESTIMATORS: Registry[type[Estimator]] = Registry(ENTRY_POINT_GROUP, "estimator", base=Estimator)
"""Registered estimators; `@register_estimator` adds one (see `designkit.registry`)."""
register_estimator = ESTIMATORS.register


def estimator_class(name: str, *, file: str | Path | None = None, field: str | None = None) -> type[Estimator]:
    """The class registered as `name`, from an entry point, or at the import path `module:Class`."""
    return ESTIMATORS.get(name, file=file, field=field)


def estimator_for(outcome: OutcomeSpec, options: AnalysisOptions, *, file: str | Path | None = None,
                  field: str | None = None, multi_instance: bool = False) -> Estimator:
    """The outcome's own estimator, else the default for its type under `options` and its
    `aggregate` setting (`estimator_name`)."""
    name = estimator_name(outcome, options, multi_instance=multi_instance)
    cls = estimator_class(name, file=file, field=field)
    averaged_binary = outcome.type == "binary" and multi_instance and outcome.estimator is None
    if outcome.type not in cls.outcome_types and not averaged_binary:
        raise InputError(file, field, f"expected an estimator for {outcome.type} outcomes ({outcome.name!r}); "
                                      f"{name!r} takes {', '.join(cls.outcome_types)} outcomes")
    return cls()


def check_estimators(experiments: Sequence[ExperimentSpec], options: AnalysisOptions, file: str | Path | None = None) -> None:
    """Refuse (InputError naming `file` and the outcome) any outcome whose estimator cannot be used."""
    for i, spec in enumerate(experiments):
        for j, outcome in enumerate(spec.outcomes):
            estimator_for(outcome, options, file=file, field=f"experiments[{i}].outcomes[{j}].estimator")


def estimator_name(outcome: OutcomeSpec, options: AnalysisOptions, *, multi_instance: bool = False) -> str:
    """The estimator an outcome gets: its own; else `cluster_robust` for `aggregate:
    cluster_robust`; else, for a binary outcome whose items have several probe instances
    (averaged to proportions), the continuous method on those proportions; else the default
    for its type."""
    if outcome.estimator:
        return outcome.estimator
    if outcome.aggregate == "cluster_robust":
        return "cluster_robust"
    if outcome.type == "binary" and multi_instance:
        return options.continuous_method
    return default_estimator(outcome.type, options)


def aggregation_note(outcome: OutcomeSpec, options: AnalysisOptions, max_instances: int) -> str:
    """One sentence for the report: how the outcome's probe instances reached the test."""
    if max_instances <= 1:
        return "one probe instance per item: the item's score is tested"
    name = estimator_name(outcome, options, multi_instance=True)
    if outcome.aggregate == "cluster_robust" and not outcome.estimator:
        return (f"up to {max_instances} probe instances per item enter a regression on the arm with standard errors "
                "clustered by item (cluster_robust)")
    unit = "proportion" if outcome.type == "binary" else "mean"
    return f"up to {max_instances} probe instances per item are averaged to the item's {unit}, which {name} tests (the item is the unit)"


def default_estimator(outcome_type: str, options: AnalysisOptions) -> str:
    """binary -> `newcombe`; continuous -> `analysis.continuous_method` (`welch` or `bootstrap`)."""
    return DEFAULTS[outcome_type](options)


DEFAULTS: dict[str, Callable[[AnalysisOptions], str]] = {
    "binary": lambda options: "newcombe",
    "continuous": lambda options: options.continuous_method,
}


def effects_table(
    frame: pd.DataFrame,
    experiments: Sequence[ExperimentSpec],
    options: AnalysisOptions | None = None,
    *,
    instances: pd.DataFrame | None = None,
    **overrides: object,
) -> pd.DataFrame:
    """Every outcome of every experiment through its estimator, as one tidy frame of `Effect` rows.

    `frame` is the long outcome frame (`outcome_frame.long_outcome_frame`). `options`
    (default `AnalysisOptions()`, with `overrides` such as `alpha=0.1` applied) say alpha,
    the continuous method and the bootstrap seed. Experiments without a control arm are
    skipped by estimators that compare against one. `family` is set by the estimator
    (`confirmatory` for the primary outcome's claims at the final step); `p_adj` is left
    NaN for `multiple_testing.adjust`. `instances` is the instance-level frame
    (`long_outcome_frame(..., instances=True)`) for estimators that read it.
    """
    options = dataclasses.replace(options or AnalysisOptions(), **overrides)  # type: ignore[arg-type]
    missing = [c for c in LONG_FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"expected long outcome frame columns {list(LONG_FRAME_COLUMNS)}, missing {missing}; got {list(frame.columns)}")
    effects: list[Effect] = []
    for spec in experiments:
        rows = frame[frame["experiment"] == spec.name]
        if rows.empty:
            continue
        for outcome in spec.outcomes:
            mine = rows[rows["outcome"] == outcome.name]
            estimator = estimator_for(outcome, options, multi_instance=max_instances(mine) > 1)
            if estimator.needs_control and spec.control_arm is None:
                continue
            own_instances = None
            if instances is not None:
                own_instances = instances[(instances["experiment"] == spec.name) & (instances["outcome"] == outcome.name)]
            task = EstimationTask(spec, outcome, options, arm_doses(rows, spec), int(rows["step"].max()), own_instances)
            effects += estimator.estimate(mine, task)
    return effects_frame(effects)


def max_instances(rows: pd.DataFrame) -> int:
    """The most probe instances averaged into one item's value (1 for frames without the column)."""
    if "n_instances" not in rows.columns or rows.empty:
        return 1
    return int(pd.to_numeric(rows["n_instances"]).max())


def arm_doses(rows: pd.DataFrame, spec: ExperimentSpec) -> dict[str, int]:
    """Each arm's dose; declared arms are listed even when unscored, so a missing arm shows
    up as an NaN row instead of silently vanishing from the confirmatory family."""
    doses = {arm.name: arm.dose for arm in spec.arms}
    for arm, dose in rows.groupby("arm")["dose"].first().items():
        doses.setdefault(str(arm), int(dose))
    return doses
