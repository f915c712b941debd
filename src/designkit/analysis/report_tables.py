"""Everything `designkit analyze` reports, computed once as tidy frames.

`compute_tables` runs the statistics layer over a run's scores and returns
`ReportTables`; the renderers (`report_render`, `figures`, `summary_text`) only format
these frames, statsmodels-style: compute once, render many.

Choices made here, beyond the statistics layer's own:

- Multiplicity: one method (the design's `analysis.multiplicity`, Holm by default) within
  each family. Window contrasts join the exploratory family.
- Verdicts use the adjusted p of the confirmatory family (primary outcome, final
  checkpoint). A placebo (A/A) arm is never inserted, so a significant placebo effect is
  a red flag about the pipeline, not a finding.
- TOST for placebo experiments: the design's margin is in effect-size units (Cohen's d or
  h, docs/formats.md); it is turned into outcome units with the pooled SD of the two arms
  (d) or around the control rate (h) at the final step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from designkit.analysis.dose_response import (
    INTERCEPT_TERM,
    SLOPE_MODEL,
    SLOPE_TERM,
    DoseTerm,
    dose_response_table,
    predicted_curve,
)
from designkit.analysis.effects import CONFIRMATORY, finite_values
from designkit.analysis.estimator import effects_table
from designkit.analysis.equivalence import Equivalence, tost_equivalence
from designkit.errors import InputError
from designkit.plan_types import ExperimentSpec
from designkit.analysis.multiple_testing import adjust
from designkit.analysis.outcome_frame import long_outcome_frame
from designkit.analysis.options import AnalysisOptions
from designkit.analysis.over_training import WINDOW_CONTRAST, window_contrasts_table
from designkit.analysis.power_check import achieved_mde_table
from designkit.analysis.tidy import to_frame
from designkit.planning.power import proportion_difference_from_h

# arm verdicts (confirmatory test of one treated arm)
EFFECT = "effect"
EFFECT_OPPOSITE = "effect, opposite to expected direction"
NO_EFFECT = "no detectable effect"
NOT_TESTABLE = "not testable"
PLACEBO_NULL = "null, as expected"
PLACEBO_EFFECT = "RED FLAG: placebo effect"
# experiment-level verdicts beyond those
NO_CONTROL = "no control arm: nothing estimated"
NOT_SCORED = "not scored"


@dataclass(frozen=True)
class AppliedCheck:
    """`applied.parquet` against the plan's placements: the same multiset of edits?"""

    planned: int
    applied: int
    missing: int
    """Planned edits not in the applied log."""
    extra: int
    """Applied edits not in the plan."""
    wrong_step: int
    """Applied edits logged at a step other than global_seq // global_batch."""
    planned_by_edit: dict[str, int]
    applied_by_edit: dict[str, int]
    example: str = ""
    """One differing edit, `(global_seq, offset, item_index, edit)`, for the error message."""

    @property
    def agrees(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.wrong_step == 0 and self.planned == self.applied

    def describe(self) -> str:
        if self.agrees:
            return f"applied log agrees with the plan: {self.applied} edits"
        parts = [f"{self.planned} edits planned, {self.applied} applied", f"{self.missing} planned but not applied",
                 f"{self.extra} applied but not planned"]
        if self.wrong_step:
            parts.append(f"{self.wrong_step} logged at the wrong step")
        example = f"; e.g. {self.example}" if self.example else ""
        return "applied log differs from the plan: " + ", ".join(parts) + example

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "agrees": self.agrees}


EDIT_KEY = ("global_seq", "offset", "item_index", "edit")


def check_applied(placements: pd.DataFrame, applied: pd.DataFrame, global_batch: int) -> AppliedCheck:
    """Compare the multisets of `(global_seq, offset, item_index, edit)` of plan and run."""
    planned_counts = _edit_counts(placements)
    applied_counts = _edit_counts(applied)
    both = pd.concat([planned_counts.rename("planned"), applied_counts.rename("applied")], axis=1).fillna(0)
    missing = (both["planned"] - both["applied"]).clip(lower=0)
    extra = (both["applied"] - both["planned"]).clip(lower=0)
    example = ""
    if missing.sum():
        example = f"planned but not applied: {_key_text(missing[missing > 0].index[0])}"
    elif extra.sum():
        example = f"applied but not planned: {_key_text(extra[extra > 0].index[0])}"
    wrong_step = 0
    if len(applied):
        expected_step = applied["global_seq"].astype("int64") // int(global_batch)
        wrong = applied["step"].astype("int64") != expected_step
        wrong_step = int(wrong.sum())
        if wrong_step and not example:
            row = applied[wrong].iloc[0]
            example = f"global_seq {int(row['global_seq'])} logged at step {int(row['step'])}, trained at step {int(row['global_seq']) // global_batch}"
    return AppliedCheck(
        planned=len(placements), applied=len(applied), missing=int(missing.sum()), extra=int(extra.sum()),
        wrong_step=wrong_step,
        planned_by_edit={str(k): int(v) for k, v in placements["edit"].astype(str).value_counts().sort_index().items()},
        applied_by_edit={str(k): int(v) for k, v in applied["edit"].astype(str).value_counts().sort_index().items()},
        example=example,
    )


def _edit_counts(frame: pd.DataFrame) -> pd.Series:
    """How often each `(global_seq, offset, item_index, edit)` occurs."""
    keys = pd.DataFrame({c: frame[c].astype("int64").to_numpy() for c in EDIT_KEY[:3]})
    keys["edit"] = frame["edit"].astype(str).to_numpy()
    return keys.value_counts()


def _key_text(key: tuple) -> str:
    return "(" + ", ".join(f"{name}={value}" for name, value in zip(EDIT_KEY, key)) + ")"


@dataclass(frozen=True)
class EquivalenceResult:
    """A placebo arm's TOST against its control at the final step, labelled."""

    experiment: str
    outcome: str
    outcome_type: str
    arm: str
    control_arm: str
    step: int
    primary: bool
    margin_effect_size: float
    """The design's margin, in `effect_size_name` units."""
    effect_size_name: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_tost: float
    equivalent: bool
    margin_low: float
    """The margin in outcome units (difference treated - control)."""
    margin_high: float
    alpha: float
    n_treated: int
    n_control: int
    method: str
    note: str = ""


@dataclass(frozen=True)
class ArmMean:
    """Mean outcome of one arm at one checkpoint, with a (1 - alpha) CI."""

    experiment: str
    outcome: str
    outcome_type: str
    arm: str
    dose: int
    inserted: bool
    step: int
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    method: str
    """`t` (continuous) or `wilson` (binary)."""


@dataclass(frozen=True)
class Verdict:
    """The confirmatory result of one treated arm: its primary outcome at the final step."""

    experiment: str
    kind: str
    placebo: bool
    arm: str
    control_arm: str
    dose: int
    outcome: str
    outcome_type: str
    step: int
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    p_adj: float
    treated_mean: float
    control_mean: float
    n_treated: int
    n_control: int
    effect_size: float
    effect_size_name: str
    expected_sign: int
    verdict: str
    red_flag: bool
    """A placebo arm with a significant effect."""
    equivalent: bool | None = None
    """TOST decision for a placebo arm when the design sets a margin, else None."""


@dataclass(frozen=True)
class ReportTables:
    """The tidy results of one run; the report renders from these alone."""

    identity: dict[str, Any]
    settings: AnalysisOptions
    experiments: list[dict[str, Any]]
    """Per experiment: name, kind, placebo, control_arm, arms, outcomes (with descriptions),
    primary_outcome, verdict, red_flag."""
    effects: pd.DataFrame
    """Every `Effect`: treated vs control (each outcome, arm, step) and window contrasts, adjusted."""
    arm_means: pd.DataFrame
    dose_response: pd.DataFrame
    dose_curves: pd.DataFrame
    """`experiment, outcome, dose, predicted, glm_family`: the `log1p_dose` fit at the final step."""
    power: pd.DataFrame
    """Achieved MDE at the final step, with the plan's `planned_*` columns."""
    equivalence: pd.DataFrame
    verdicts: pd.DataFrame
    metrics: pd.DataFrame
    checkpoint_steps: list[int]
    applied: AppliedCheck

    @property
    def confirmatory(self) -> pd.DataFrame:
        return self.effects[self.effects["family"] == CONFIRMATORY]

    @property
    def red_flags(self) -> list[str]:
        flags = [f"{v.experiment}/{v.arm}: placebo arm differs from control" for v in self.verdicts.itertuples() if v.red_flag]
        if not self.applied.agrees:
            flags.insert(0, self.applied.describe())
        return flags


def compute_tables(
    plan_meta: Mapping[str, Any],
    items: pd.DataFrame,
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    applied: AppliedCheck,
    identity: dict[str, Any],
    checkpoint_steps: Sequence[int],
) -> ReportTables:
    """Run every estimator once. `scores` holds the planned checkpoints' scores only."""
    settings = AnalysisOptions.from_plan(plan_meta)
    entries = list(plan_meta["experiments"])
    specs = [ExperimentSpec.from_plan(e) for e in entries]
    frame = long_outcome_frame(items, scores, specs)

    effects = effects_table(frame, specs, settings)
    contrasts = window_contrasts_table(frame, specs, options=settings)
    if len(contrasts):
        effects = pd.concat([effects, contrasts], ignore_index=True)
    effects = adjust(effects, method=settings.multiplicity) if len(effects) else effects

    multi_dose = [s for s in specs if len({a.dose for a in s.arms if a.name != s.control_arm}) >= 2]
    dose_response = _dose_response(frame, multi_dose, settings.alpha)
    planned_power = pd.DataFrame(plan_meta.get("power") or [])
    power = achieved_mde_table(effects, experiments=specs, planned_power=planned_power, power=settings.power) if len(effects) else pd.DataFrame()
    equivalence = equivalence_table(frame, specs, settings)
    verdicts = verdict_table(effects, equivalence, specs, entries, settings.alpha)
    experiments = [_experiment_info(entry, spec, verdicts) for entry, spec in zip(entries, specs)]
    return ReportTables(
        identity=identity,
        settings=settings,
        experiments=experiments,
        effects=effects,
        arm_means=arm_means_table(frame, specs, settings.alpha),
        dose_response=dose_response,
        dose_curves=dose_curves(dose_response, frame),
        power=power,
        equivalence=equivalence,
        verdicts=verdicts,
        metrics=metrics,
        checkpoint_steps=list(checkpoint_steps),
        applied=applied,
    )


def arm_means_table(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], alpha: float) -> pd.DataFrame:
    """Each arm's mean outcome and CI at every step: t interval, or Wilson for binary outcomes."""
    types = {(s.name, o.name): o.type for s in specs for o in s.outcomes}
    rows = []
    keys = ["experiment", "outcome", "arm", "step"]
    for (experiment, outcome, arm, step), group in frame.groupby(keys, sort=False):
        values = finite_values(group["value"].to_numpy(float))
        outcome_type = types[(experiment, outcome)]
        n = values.size
        mean = float(values.mean()) if n else math.nan
        sd = float(values.std(ddof=1)) if n > 1 else math.nan
        if outcome_type == "binary":
            low, high = proportion_confint(int(values.sum()), n, alpha=alpha, method="wilson") if n else (math.nan, math.nan)
            method = "wilson"
        else:
            half = stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
            low, high = mean - half, mean + half
            method = "t"
        rows.append(ArmMean(
            experiment=str(experiment), outcome=str(outcome), outcome_type=outcome_type, arm=str(arm),
            dose=int(group["dose"].iloc[0]), inserted=bool(group["inserted"].iloc[0]), step=int(step), n=n,
            mean=mean, sd=sd, ci_low=float(low), ci_high=float(high), method=method,
        ))
    table = to_frame(rows, ArmMean)
    return table.sort_values(["experiment", "outcome", "step", "dose", "arm"], kind="stable", ignore_index=True)


def _dose_response(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], alpha: float) -> pd.DataFrame:
    """`dose_response_table` one outcome at a time, so one degenerate outcome cannot sink the report.

    statsmodels' GLM raises (rather than warns) on some degenerate outcomes, e.g. a
    continuous outcome with no variation at all; that outcome gets NaN rows with a note.
    """
    parts = []
    for spec in specs:
        for outcome in spec.outcomes:
            single = dataclasses.replace(spec, outcomes=(dataclasses.replace(outcome, primary=True),))
            try:
                parts.append(dose_response_table(frame, [single], alpha=alpha))
            except (ValueError, np.linalg.LinAlgError) as exc:
                parts.append(to_frame([DoseTerm(
                    experiment=spec.name, outcome=outcome.name, model=SLOPE_MODEL, term=SLOPE_TERM, estimate=math.nan,
                    se=math.nan, ci_low=math.nan, ci_high=math.nan, p=math.nan, n_obs=0, n_clusters=0, n_steps=0,
                    glm_family="binomial" if outcome.type == "binary" else "gaussian", cov_type="cluster", alpha=alpha,
                    note=f"GLM could not be fit: {exc}".replace("\n", " "),
                )], DoseTerm))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else to_frame([], DoseTerm)


def dose_curves(dose_response: pd.DataFrame, frame: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """The `log1p_dose` GLM's predicted mean from dose 0 to the largest dose, per fit."""
    columns = ["experiment", "outcome", "dose", "predicted", "glm_family"]
    parts = []
    if dose_response.empty:
        return pd.DataFrame(columns=columns)
    slope_fits = dose_response[dose_response["model"] == SLOPE_MODEL]
    for (experiment, outcome), fit in slope_fits.groupby(["experiment", "outcome"], sort=False):
        terms = fit.set_index("term")["estimate"]
        if fit["note"].astype(bool).any() or not {INTERCEPT_TERM, SLOPE_TERM} <= set(terms.index):
            continue
        max_dose = float(frame.loc[frame["experiment"] == experiment, "dose"].max())
        doses = np.expm1(np.linspace(0.0, math.log1p(max_dose), points))
        family = str(fit["glm_family"].iloc[0])
        parts.append(pd.DataFrame({
            "experiment": experiment, "outcome": outcome, "dose": doses,
            "predicted": predicted_curve(float(terms[INTERCEPT_TERM]), float(terms[SLOPE_TERM]), doses, family),
            "glm_family": family,
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def equivalence_table(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], settings: AnalysisOptions) -> pd.DataFrame:
    """TOST of every treated arm of every placebo experiment, each outcome, at the final step."""
    margin = settings.equivalence_margin
    rows: list[EquivalenceResult] = []
    if margin is None:
        return to_frame(rows, EquivalenceResult)
    for spec in specs:
        if not spec.placebo or spec.control_arm is None:
            continue
        of_experiment = frame[frame["experiment"] == spec.name]
        if of_experiment.empty:
            continue
        step = int(of_experiment["step"].max())
        at_step = of_experiment[of_experiment["step"] == step]
        for outcome in spec.outcomes:
            values = at_step[at_step["outcome"] == outcome.name]
            by_arm = {str(a): g["value"].to_numpy(float) for a, g in values.groupby("arm")}
            control = finite_values(by_arm.get(spec.control_arm, np.empty(0)))
            for arm in sorted(a.name for a in spec.arms if a.name != spec.control_arm):
                treated = finite_values(by_arm.get(arm, np.empty(0)))
                low, high, name, note = _natural_margin(margin, treated, control, outcome.type)
                labels = dict(experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                              control_arm=spec.control_arm, step=step, primary=outcome.primary,
                              margin_effect_size=float(margin), effect_size_name=name)
                if note:
                    rows.append(EquivalenceResult(**labels, estimate=math.nan, ci_low=math.nan, ci_high=math.nan,
                                                  ci_level=1 - 2 * settings.alpha, p_tost=math.nan, equivalent=False,
                                                  margin_low=low, margin_high=high, alpha=settings.alpha,
                                                  n_treated=treated.size, n_control=control.size, method="", note=note))
                    continue
                result: Equivalence = tost_equivalence(treated, control, outcome.type, (low, high), alpha=settings.alpha)
                rows.append(EquivalenceResult(**labels, **dataclasses.asdict(result)))
    return to_frame(rows, EquivalenceResult)


def _natural_margin(margin: float, treated: np.ndarray, control: np.ndarray, outcome_type: str) -> tuple[float, float, str, str]:
    """(low, high) in outcome units for an effect-size margin, the effect size's name, and a note."""
    if min(treated.size, control.size) < 2:
        return math.nan, math.nan, "cohen_h" if outcome_type == "binary" else "cohen_d", "fewer than 2 items in an arm"
    if outcome_type == "binary":
        rate = float(control.mean())
        high = proportion_difference_from_h(margin, rate, +1)
        low = proportion_difference_from_h(margin, rate, -1)
        # At a control rate of 0 or 1 one side has no room; mirror the other side.
        if math.isnan(high) and math.isnan(low):
            return math.nan, math.nan, "cohen_h", "margin does not fit in [0, 1] around the control rate"
        high = -low if math.isnan(high) else high
        low = -high if math.isnan(low) else low
        return low, high, "cohen_h", ""
    n_t, n_c = treated.size, control.size
    pooled = math.sqrt(((n_t - 1) * treated.var(ddof=1) + (n_c - 1) * control.var(ddof=1)) / (n_t + n_c - 2))
    if not pooled > 0:
        return math.nan, math.nan, "cohen_d", "no variation within either arm: a margin in SD units is undefined"
    return -margin * pooled, margin * pooled, "cohen_d", ""


def arm_verdict(p_adj: float, estimate: float, expected_sign: int, placebo: bool, alpha: float) -> str:
    """The verdict on one confirmatory test (see the module docstring)."""
    if math.isnan(p_adj):
        return NOT_TESTABLE
    significant = p_adj < alpha
    if placebo:
        return PLACEBO_EFFECT if significant else PLACEBO_NULL
    if not significant:
        return NO_EFFECT
    return EFFECT if np.sign(estimate) == expected_sign else EFFECT_OPPOSITE


def verdict_table(
    effects: pd.DataFrame,
    equivalence: pd.DataFrame,
    specs: Sequence[ExperimentSpec],
    entries: Sequence[Mapping[str, Any]],
    alpha: float,
) -> pd.DataFrame:
    """One `Verdict` per confirmatory effect (primary outcome, treated arm, final step)."""
    rows = []
    kinds = {e["name"]: str(e.get("kind", "")) for e in entries}
    signs = {(s.name, o.name): o.expected_sign for s in specs for o in s.outcomes}
    placebo = {s.name: s.placebo for s in specs}
    if len(effects):
        confirmatory = effects[effects["family"] == CONFIRMATORY]
    else:
        confirmatory = effects
    tost = {}
    if len(equivalence):
        for r in equivalence.itertuples(index=False):
            tost[(r.experiment, r.outcome, r.arm)] = bool(r.equivalent) if not r.note else None
    for r in confirmatory.itertuples(index=False):
        sign = signs.get((r.experiment, r.outcome), 1)
        verdict = arm_verdict(float(r.p_adj), float(r.estimate), sign, placebo[r.experiment], alpha)
        rows.append(Verdict(
            experiment=r.experiment, kind=kinds.get(r.experiment, ""), placebo=placebo[r.experiment], arm=r.arm,
            control_arm=r.control_arm, dose=int(r.dose), outcome=r.outcome, outcome_type=r.outcome_type,
            step=int(r.step), estimate=float(r.estimate), ci_low=float(r.ci_low), ci_high=float(r.ci_high),
            p=float(r.p), p_adj=float(r.p_adj), treated_mean=float(r.treated_mean),
            control_mean=float(r.control_mean), n_treated=int(r.n_treated), n_control=int(r.n_control),
            effect_size=float(r.effect_size), effect_size_name=r.effect_size_name, expected_sign=sign,
            verdict=verdict, red_flag=verdict == PLACEBO_EFFECT,
            equivalent=tost.get((r.experiment, r.outcome, r.arm)),
        ))
    return to_frame(rows, Verdict)


def experiment_verdict(verdicts: Sequence[str], placebo: bool, has_control: bool) -> str:
    """One experiment's verdict from its arms' verdicts."""
    if not has_control:
        return NO_CONTROL
    if not verdicts:
        return NOT_SCORED
    if all(v == NOT_TESTABLE for v in verdicts):
        return NOT_TESTABLE
    if placebo:
        return PLACEBO_EFFECT if PLACEBO_EFFECT in verdicts else PLACEBO_NULL
    for verdict in (EFFECT, EFFECT_OPPOSITE):
        if verdict in verdicts:
            return verdict
    return NO_EFFECT


def _experiment_info(entry: Mapping[str, Any], spec: ExperimentSpec, verdicts: pd.DataFrame) -> dict[str, Any]:
    mine = verdicts[verdicts["experiment"] == spec.name] if len(verdicts) else verdicts
    arm_verdicts = [str(v) for v in mine["verdict"]] if len(mine) else []
    primary = spec.primary_outcome
    return {
        "name": spec.name,
        "kind": str(entry.get("kind", "")),
        "item_noun": item_noun(entry),
        "placebo": spec.placebo,
        "control_arm": spec.control_arm,
        "primary_outcome": primary.name if primary else None,
        "arms": {
            name: {k: arm.get(k) for k in ("dose", "n_items", "inserted", "window", "share")}
            for name, arm in (entry.get("arms") or {}).items()
        },
        "outcomes": [
            {k: o.get(k) for k in ("name", "type", "primary", "expected_sign", "description", "probe", "column", "baseline")}
            for o in entry.get("outcomes", [])
        ],
        "verdict": experiment_verdict(arm_verdicts, spec.placebo, spec.control_arm is not None),
        "equivalent": _all_equivalent(mine) if spec.placebo else None,
        "red_flag": bool(len(mine) and mine["red_flag"].any()),
    }


def item_noun(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(singular, plural) the experiment's kind calls one item; ("item", "items") if the kind
    cannot be loaded here (a user kind whose package this machine lacks)."""
    from designkit.kinds import KINDS

    try:
        return tuple(KINDS.get(str(entry.get("kind", ""))).item_noun)  # type: ignore[return-value]
    except InputError:
        return ("item", "items")


def _all_equivalent(verdicts: pd.DataFrame) -> bool | None:
    """Whether TOST showed every placebo arm equivalent to control; None when not tested."""
    if verdicts.empty or verdicts["equivalent"].isna().all():
        return None
    return bool(verdicts["equivalent"].eq(True).all())


__all__ = [
    "AppliedCheck",
    "ArmMean",
    "EquivalenceResult",
    "ReportTables",
    "Verdict",
    "WINDOW_CONTRAST",
    "arm_verdict",
    "check_applied",
    "compute_tables",
    "experiment_verdict",
]
