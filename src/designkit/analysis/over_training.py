"""Effects across checkpoints, and contrasts between insertion windows.

Bordt & Pawelczyk (2025) ask whether data seen early in pretraining is forgotten by the
end: two treated arms of one experiment get the same dose but different insertion
windows (say the first vs the last quarter of the run). Both arms are randomized from the
same item pool, so comparing them directly at a checkpoint is a valid two-sample test of
"when" holding "how often" fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from designkit.analysis.effects import EXPLORATORY, Effect, effects_frame, labelled_seed
from designkit.analysis.estimator import effects_table, estimator_for, max_instances
from designkit.plan_types import ExperimentSpec
from designkit.analysis.options import AnalysisOptions
from designkit.analysis.two_sample import TwoSampleEstimator

WINDOW_CONTRAST = "window_contrast"
"""`Effect.comparison` of a late-window arm vs an early-window arm of the same dose."""

WHOLE_RUN = (0.0, 1.0)


def effects_over_training(
    frame: pd.DataFrame,
    experiments: Sequence[ExperimentSpec],
    **effects_options: object,
) -> pd.DataFrame:
    """Treated-vs-control effects at every checkpoint, ordered for plotting against step.

    `effects_options` are passed to `effects_table` (options, alpha, continuous_method, seed, ...).
    """
    table = effects_table(frame, experiments, **effects_options)  # type: ignore[arg-type]
    return table.sort_values(["experiment", "outcome", "arm", "step"], ignore_index=True)


def window_pairs(spec: ExperimentSpec) -> list[tuple[str, str]]:
    """(early arm, late arm) for every two inserted arms with equal dose and different windows.

    An arm without a window spans the whole run. "Early" is the window that starts first
    (ends first on a tie).
    """
    inserted = [a for a in spec.arms if a.inserted and a.name != spec.control_arm]
    pairs = []
    for i, first in enumerate(inserted):
        for second in inserted[i + 1:]:
            first_window = first.window or WHOLE_RUN
            second_window = second.window or WHOLE_RUN
            if first.dose != second.dose or first_window == second_window:
                continue
            early, late = sorted((first, second), key=lambda a: a.window or WHOLE_RUN)
            pairs.append((early.name, late.name))
    return sorted(pairs)


def window_contrast(
    frame: pd.DataFrame,
    spec: ExperimentSpec,
    outcome: str,
    early_arm: str,
    late_arm: str,
    *,
    step: int | None = None,
    options: AnalysisOptions | None = None,
    **overrides: object,
) -> Effect:
    """Late-window arm minus early-window arm at `step` (default: the last scored step).

    The outcome's own two-sample estimator does the comparison (binary: difference in
    proportions; continuous: Welch or the bootstrap). In the returned `Effect`, `arm` is the
    late arm, `control_arm` the early arm, `n_treated`/`n_control` their item counts, and
    `family` is exploratory.
    """
    options = dataclasses.replace(options or AnalysisOptions(), **overrides)  # type: ignore[arg-type]
    outcome_spec = spec.outcome(outcome)
    rows = frame[(frame["experiment"] == spec.name) & (frame["outcome"] == outcome)]
    estimator = estimator_for(outcome_spec, options, multi_instance=max_instances(rows) > 1)
    if not isinstance(estimator, TwoSampleEstimator):
        raise ValueError(f"outcome {outcome!r}: a window contrast needs a two-sample estimator, not {estimator.name!r}")
    if step is None:
        step = int(frame.loc[frame["experiment"] == spec.name, "step"].max())
    at_step = rows[rows["step"] == step]
    early = at_step.loc[at_step["arm"] == early_arm, "value"].to_numpy(float)
    late = at_step.loc[at_step["arm"] == late_arm, "value"].to_numpy(float)
    comparison = estimator.compare(late, early, options,
                                   labelled_seed(options.seed, spec.name, outcome, late_arm, early_arm, step))
    doses = {a.name: a.dose for a in spec.arms}
    dose = doses.get(late_arm)
    if dose is None:
        dose = int(rows.loc[rows["arm"] == late_arm, "dose"].iloc[0])
    return Effect.from_comparison(
        dataclasses.replace(comparison, method=f"{WINDOW_CONTRAST} (late - early): {comparison.method}"),
        experiment=spec.name, outcome=outcome, outcome_type=outcome_spec.type, arm=late_arm,
        control_arm=early_arm, dose=int(dose), step=int(step), comparison=WINDOW_CONTRAST,
        primary=outcome_spec.primary, family=EXPLORATORY, estimator=estimator.name,
    )


def window_contrasts_table(
    frame: pd.DataFrame,
    experiments: Sequence[ExperimentSpec],
    *,
    steps: Sequence[int] | None = None,
    options: AnalysisOptions | None = None,
    **overrides: object,
) -> pd.DataFrame:
    """`window_contrast` for every window pair and two-sample outcome of every experiment.

    `steps=None` uses each experiment's last scored step. The rows have the `Effect`
    columns, so they can be appended to the effects table before `adjust`.
    """
    options = dataclasses.replace(options or AnalysisOptions(), **overrides)  # type: ignore[arg-type]
    effects = []
    for spec in experiments:
        pairs = window_pairs(spec)
        scored_steps = frame.loc[frame["experiment"] == spec.name, "step"]
        if not pairs or scored_steps.empty:
            continue
        for step in ([int(scored_steps.max())] if steps is None else steps):
            for outcome in spec.outcomes:
                own = frame[(frame["experiment"] == spec.name) & (frame["outcome"] == outcome.name)]
                if not isinstance(estimator_for(outcome, options, multi_instance=max_instances(own) > 1), TwoSampleEstimator):
                    continue
                for early, late in pairs:
                    effects.append(window_contrast(frame, spec, outcome.name, early, late, step=step, options=options))
    return effects_frame(effects)
