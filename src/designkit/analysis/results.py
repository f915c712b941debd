"""`RunResults`: everything the analysis estimates for one scored run, computed once.

In the spirit of statsmodels' results objects: `load(RUN)` checks the run against its
plan and runs every estimator once; the object holds tidy frames (`effects`, `verdicts`,
`arm_means`, `power`, `equivalence`), the fitted dose-response GLMs (`dose_response`,
whose `predict` is statsmodels' own), `conf_int(alpha)`, `summary()` and `plot_*()`.
The report (`report.py`) is a template over it and recomputes nothing.

Verdicts use the adjusted p of the confirmatory family (primary outcome, final
checkpoint). A placebo (A/A) arm is never inserted, so a significant placebo effect is a
red flag about the pipeline, not a finding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

import designkit
from designkit.analysis import controlled, forgetting
from designkit.analysis.dose_response import DoseResponse
from designkit.analysis.effects import CONFIRMATORY, finite_values
from designkit.analysis.equivalence import equivalence_table
from designkit.analysis.estimator import (
    Estimator,
    ReportSection,
    aggregation_note,
    check_estimators,
    effects_table,
    estimator_for,
)
from designkit.analysis.multiple_testing import adjust
from designkit.analysis.options import AnalysisOptions
from designkit.analysis.outcome_frame import long_outcome_frame
from designkit.analysis.over_training import window_contrasts_table
from designkit.analysis.power_check import achieved_mde_table
from designkit.analysis.tidy import to_frame
from designkit.errors import InputError
from designkit.plan_types import ExperimentSpec
from designkit.provenance import AppliedCheck, check_run
from designkit.runfile import RunDir

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
EFFECT_KEYS = ["experiment", "outcome", "arm", "control_arm", "comparison", "step"]


@dataclass(frozen=True)
class ArmMean:
    """Mean outcome of one arm at one checkpoint, with a (1 - alpha) CI (`t`, or `wilson` for binary)."""

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
    method: str
    comparison: str
    """`vs_control`, or what the outcome's estimator compares against (e.g. `vs_standard_normal`)."""
    expected_sign: int
    verdict: str
    red_flag: bool
    """A placebo arm with a significant effect."""
    equivalent: bool | None = None
    """TOST decision for a placebo arm when the design sets a margin, else None."""


@dataclass(frozen=True, eq=False)
class RunResults:
    """The results of one run (see the module docstring)."""

    identity: dict[str, Any]
    options: AnalysisOptions
    specs: tuple[ExperimentSpec, ...]
    experiments: list[dict[str, Any]]
    """Per experiment: name, kind, item_noun, placebo, arms, outcomes, verdict, red_flag, ..."""
    effects: pd.DataFrame
    """Every effect row of every estimator, adjusted within its family (effects.parquet)."""
    arm_means: pd.DataFrame
    dose_response: DoseResponse
    power: pd.DataFrame
    equivalence: pd.DataFrame
    verdicts: pd.DataFrame
    metrics: pd.DataFrame
    checkpoint_steps: list[int]
    applied: AppliedCheck
    frame: pd.DataFrame = field(repr=False)
    """The long outcome frame every estimator read."""
    sections: list[ReportSection] = field(default_factory=list, repr=False)
    """Report sections added by estimators (and the probe-instance aggregation, where items have several)."""
    figures: list = field(default_factory=list, repr=False)
    """Figures drawn from the run beyond the checkpoint scores (``figures.FigureFile``: controller trajectories)."""
    budget: dict[str, Any] = field(default_factory=dict, repr=False)
    """The plan's token budget: injected and edited shares of the run, and a row per experiment and arm."""
    baseline_metrics: pd.DataFrame | None = field(default=None, repr=False)
    """metrics.csv of a reference run with the same seed and no experiments (``--baseline-run``), if given."""
    baseline_identity: dict[str, Any] | None = field(default=None, repr=False)
    instances: pd.DataFrame | None = field(default=None, repr=False)
    """The instance-level outcome frame, for outcomes with `aggregate: cluster_robust` (else None)."""
    warnings: list[str] = field(default_factory=list)
    """Lines the report shows as warnings: experiments whose treated and control items (or
    training payloads and probe instances) share n-grams (plan.json `spillover`)."""

    @property
    def confirmatory(self) -> pd.DataFrame:
        return self.effects[self.effects["family"] == CONFIRMATORY]

    @property
    def red_flags(self) -> list[str]:
        flags = [f"{v.experiment}/{v.arm}: placebo arm differs from control" for v in self.verdicts.itertuples() if v.red_flag]
        for name, estimator in _estimators(self.specs, self.options).items():
            mine = self.effects[self.effects["estimator"] == name] if len(self.effects) else self.effects
            if len(mine):
                flags += estimator.red_flags(mine, self.options)
        if not self.applied.agrees:
            flags.insert(0, self.applied.describe())
        return flags

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Every effect's (1 - alpha) CI, keyed like `effects`; another alpha re-runs the estimators."""
        effects = self.effects
        if alpha is not None and alpha != self.options.alpha:
            effects = _estimate(self.frame, self.specs, dataclasses.replace(self.options, alpha=alpha), self.instances)
        return effects[EFFECT_KEYS + ["estimate", "ci_low", "ci_high"]].reset_index(drop=True)

    @cached_property
    def paragraphs(self) -> dict[str, str]:
        """One plain-language paragraph per experiment, in plan order."""
        from designkit.analysis.summary_text import experiment_paragraph

        return {info["name"]: experiment_paragraph(self, info) for info in self.experiments}

    def summary(self) -> str:
        """The confirmatory effects as an aligned table, with the red flags."""
        from designkit.analysis.render import confirmatory_table
        from designkit.console_table import format_table

        view = confirmatory_table(self)
        head = (f"{self.identity.get('plan_name')}: {len(self.experiments)} experiment(s), checkpoints "
                f"{', '.join(map(str, self.checkpoint_steps))}; {self.applied.describe()}")
        lines = [head, "", format_table(view.records(), view.headers)]
        return "\n".join(lines + [f"RED FLAG: {flag}" for flag in self.red_flags])

    @property
    def estimators(self) -> dict[str, Estimator]:
        """Every estimator the outcomes use, by name."""
        return _estimators(self.specs, self.options)

    def plot_dose_response(self, experiment: str):
        """Each arm's mean at the final step with its CI, and the GLM curve (a matplotlib Figure)."""
        from designkit.analysis import figures

        return figures.dose_response_figure(self, experiment)

    def plot_effects_over_training(self, experiment: str):
        from designkit.analysis import figures

        return figures.effects_over_training_figure(self, experiment)

    def plot_forest(self):
        from designkit.analysis import figures

        return figures.forest_figure(self)

    def plot_loss(self):
        from designkit.analysis import figures

        return figures.loss_figure(self.metrics, self.checkpoint_steps)


def load(run_dir: str | Path, *, allow_applied_mismatch: bool = False, baseline_run: str | Path | None = None) -> RunResults:
    """Check the scored run at `run_dir` against its plan and estimate everything.

    Refusals are `InputError`s: a run whose plan hash differs from its plan's (or whose
    plan files changed); a planned checkpoint step without a complete checkpoint or
    without scores; scores whose items are not this plan's; an outcome whose estimator
    cannot be loaded; an applied log that differs from the plan's placements. The engine
    already stops a run whose log disagrees, so a disagreement here means an engine bug
    or an edited run: the treatment the items received is unknown.
    `allow_applied_mismatch=True` goes on anyway, for debugging, with the disagreement as
    the first red flag. `baseline_run` is a reference run with the same seed and no
    experiments (``designkit.analysis.baseline_run``), whose training loss the report shows
    beside this run's.
    """
    run = RunDir.open(run_dir)
    plan = run.plan()
    baseline = None
    if baseline_run is not None:
        from designkit.analysis.baseline_run import load_reference_metrics

        baseline = load_reference_metrics(baseline_run, plan.meta)
    options = AnalysisOptions.from_plan(plan.meta)
    check_estimators(plan.experiment_specs, options, plan.path / "plan.json")
    steps = [int(s) for s in plan.meta["training"]["checkpoint_steps"]]
    missing = [s for s in steps if s not in run.checkpoints()]
    if missing:
        raise InputError(run.path / "checkpoints", None,
                         f"expected a complete checkpoint for every planned step {steps}; missing steps {missing} "
                         "(finish training with designkit train PLAN RUN --resume)")
    applied = check_run(plan, run.applied(), run.controller())  # the check train ran: edits, steps and trained tokens' checksums
    if not applied.agrees and not allow_applied_mismatch:
        raise InputError(run.path / "applied.parquet", None,
                         f"expected exactly the plan's edits; {applied.describe()}. The run is not the planned experiment, "
                         "so no effect can be attributed to the plan's arms (an engine bug or an edited run)")
    scores = run.scores(steps)  # refuses unscored steps
    items = plan.items()
    _check_score_items(run, scores, items)
    identity = _identity(run, plan, steps, list(run.score_files()), applied)
    results = compute(plan.meta, items, scores, run.metrics(), applied, identity, steps)
    if any(spec.controller for spec in results.specs):
        # run-time dose control (KA): what the controller did, from the in-loop scores and controller.csv
        log = run.controller()
        usage = controlled.controller_usage(results.specs, items, run.applied(), plan.reserved(), log, plan.meta["geometry"]["total_tokens"])
        results.sections.extend(controlled.usage_section(usage))
        results.figures.extend(controlled.trajectory_figures(results.specs, items, run.inloop_scores(), log))
    # forgetting curves (FC) from the in-loop rows, dense right after each replaced batch
    sections, figures = forgetting.inloop_curve(results.specs, items, run.inloop_scores(), results.options)
    results.sections.extend(sections)
    results.figures.extend(figures)
    if baseline is not None:
        results = dataclasses.replace(results, baseline_metrics=baseline[0], baseline_identity=baseline[1])
    return results


def compute(plan_meta: Mapping[str, Any], items: pd.DataFrame, scores: pd.DataFrame, metrics: pd.DataFrame,
            applied: AppliedCheck, identity: dict[str, Any], checkpoint_steps: Sequence[int]) -> RunResults:
    """Run every estimator once. `scores` holds the planned checkpoints' scores only."""
    options = AnalysisOptions.from_plan(plan_meta)
    entries = list(plan_meta["experiments"])
    specs = tuple(ExperimentSpec.from_json(e) for e in entries)
    frame = long_outcome_frame(items, scores, specs)
    clustered = [s for s in specs if any(o.aggregate == "cluster_robust" for o in s.outcomes)]
    instances = long_outcome_frame(items, scores, clustered, instances=True) if clustered else None
    effects = _estimate(frame, specs, options, instances)
    multi_dose = [s for s in specs if len({a.dose for a in s.arms if a.name != s.control_arm}) >= 2]
    planned_power = pd.DataFrame(plan_meta.get("power") or [])
    power = (achieved_mde_table(effects, experiments=specs, planned_power=planned_power, power=options.power)
             if len(effects) else pd.DataFrame())
    equivalence = equivalence_table(frame, specs, options.alpha, options.equivalence_margin)
    verdicts = verdict_table(effects, equivalence, specs, options)
    return RunResults(
        identity=identity, options=options, specs=specs,
        experiments=[_experiment_info(entry, spec, verdicts) for entry, spec in zip(entries, specs)],
        effects=effects, arm_means=arm_means_table(frame, specs, options.alpha),
        dose_response=DoseResponse.fit(frame, multi_dose, alpha=options.alpha), power=power,
        equivalence=equivalence, verdicts=verdicts, metrics=metrics, checkpoint_steps=list(checkpoint_steps),
        applied=applied, frame=frame, sections=_sections(effects, specs, options) + instance_sections(frame, specs, options), budget=dict(plan_meta.get("budget") or {}),
        instances=instances, warnings=spillover_warnings(plan_meta),
    )


def _estimate(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], options: AnalysisOptions,
              instances: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every estimator's rows plus the window contrasts, adjusted within each family."""
    effects = effects_table(frame, specs, options, instances=instances)
    contrasts = window_contrasts_table(frame, specs, options=options)
    if len(contrasts):
        effects = pd.concat([effects, contrasts], ignore_index=True)
    return adjust(effects, method=options.multiplicity) if len(effects) else effects


def _estimators(specs: Sequence[ExperimentSpec], options: AnalysisOptions) -> dict[str, Estimator]:
    """Every estimator the run's outcomes use, by name, in plan order."""
    found: dict[str, Estimator] = {}
    for outcome in (o for spec in specs for o in spec.outcomes):
        estimator = estimator_for(outcome, options)
        found.setdefault(estimator.name, estimator)
    return found


def _sections(effects: pd.DataFrame, specs: Sequence[ExperimentSpec], options: AnalysisOptions) -> list[ReportSection]:
    return [section for name, estimator in _estimators(specs, options).items() if len(effects)
            for section in estimator.sections(effects[effects["estimator"] == name], options)
            if (effects["estimator"] == name).any()]


def instance_sections(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], options: AnalysisOptions) -> list[ReportSection]:
    """A "Probe instances" table where some item has several: per outcome, how the instances
    reached the test (averaged to the item, or clustered by item). None otherwise."""
    if "n_instances" not in frame.columns or frame.empty or int(frame["n_instances"].max()) <= 1:
        return []
    rows = []
    for spec in specs:
        for outcome in spec.outcomes:
            mine = frame[(frame["experiment"] == spec.name) & (frame["outcome"] == outcome.name)]
            if mine.empty or int(mine["n_instances"].max()) <= 1:
                continue
            most = int(mine["n_instances"].max())
            rows.append({"experiment": spec.name, "outcome": outcome.name, "aggregate": outcome.aggregate,
                         "instances per item": f"{int(mine['n_instances'].min())}–{most}",
                         "test": aggregation_note(outcome, options, most)})
    intro = ("Items with several probe instances (test problems, held-out prompts): the item is the randomized unit, "
             "so its instances are not independent; each outcome's `aggregate` setting says how they enter the test.")
    return [ReportSection("Probe instances", intro, pd.DataFrame(rows))]


def spillover_warnings(plan_meta: Mapping[str, Any]) -> list[str]:
    """One line per experiment where the plan found spillover n-grams (plan.json `spillover`)."""
    info = plan_meta.get("spillover") or {}
    lines = []
    for row in info.get("experiments", []):
        if row.get("controls_exposed"):
            example = row.get("example_pair") or ["?", "?"]
            lines.append(f"{row['experiment']}: {row['controls_exposed']} control items share a {info.get('ngram')}-gram with "
                         f"treated items' training text (e.g. {example[0]} and {example[1]}), so controls may learn from the "
                         "insertions and the contrast underestimates the effect")
        if row.get("instances_overlapping"):
            lines.append(f"{row['experiment']}: {row['instances_overlapping']} held-out probe instances share a "
                         f"{info.get('ngram')}-gram with inserted training payloads (e.g. {row.get('example_instance')})")
    return lines


def arm_means_table(frame: pd.DataFrame, specs: Sequence[ExperimentSpec], alpha: float) -> pd.DataFrame:
    """Each arm's mean outcome and CI at every step: t interval, or Wilson for binary outcomes."""
    types = {(s.name, o.name): o.type for s in specs for o in s.outcomes}
    rows = []
    for (experiment, outcome, arm, step), group in frame.groupby(["experiment", "outcome", "arm", "step"], sort=False):
        values = finite_values(group["value"].to_numpy(float))
        outcome_type = types[(experiment, outcome)]
        n = values.size
        mean = float(values.mean()) if n else math.nan
        sd = float(values.std(ddof=1)) if n > 1 else math.nan
        if outcome_type == "binary" and np.isin(values, (0.0, 1.0)).all():  # item proportions (several instances) get the t interval
            low, high = proportion_confint(int(values.sum()), n, alpha=alpha, method="wilson") if n else (math.nan, math.nan)
        else:
            half = stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
            low, high = mean - half, mean + half
        rows.append(ArmMean(
            experiment=str(experiment), outcome=str(outcome), outcome_type=outcome_type, arm=str(arm),
            dose=int(group["dose"].iloc[0]), inserted=bool(group["inserted"].iloc[0]), step=int(step), n=n,
            mean=mean, sd=sd, ci_low=float(low), ci_high=float(high),
            method="wilson" if outcome_type == "binary" and np.isin(values, (0.0, 1.0)).all() else "t",
        ))
    table = to_frame(rows, ArmMean)
    return table.sort_values(["experiment", "outcome", "step", "dose", "arm"], kind="stable", ignore_index=True)


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


def verdict_table(effects: pd.DataFrame, equivalence: pd.DataFrame, specs: Sequence[ExperimentSpec],
                  options: AnalysisOptions) -> pd.DataFrame:
    """One `Verdict` per confirmatory effect (primary outcome, treated arm, final step)."""
    by_name = {s.name: s for s in specs}
    confirmatory = effects[effects["family"] == CONFIRMATORY] if len(effects) else effects
    tost = {(r.experiment, r.outcome, r.arm): (bool(r.equivalent) if not r.note else None)
            for r in equivalence.itertuples(index=False)}
    rows = []
    for r in confirmatory.itertuples(index=False):
        spec = by_name[r.experiment]
        outcome = spec.outcome(r.outcome)
        sign = outcome.expected_sign
        # an unsigned estimate (a distance) counts as in the expected direction
        direction = sign if estimator_for(outcome, options).signed else np.sign(r.estimate)
        verdict = arm_verdict(float(r.p_adj), float(r.estimate), direction, spec.placebo, options.alpha)
        rows.append(Verdict(
            experiment=r.experiment, kind=spec.kind, placebo=spec.placebo, arm=r.arm, control_arm=r.control_arm,
            dose=int(r.dose), outcome=r.outcome, outcome_type=r.outcome_type, step=int(r.step),
            estimate=float(r.estimate), ci_low=float(r.ci_low), ci_high=float(r.ci_high), p=float(r.p),
            p_adj=float(r.p_adj), treated_mean=float(r.treated_mean), control_mean=float(r.control_mean),
            n_treated=int(r.n_treated), n_control=int(r.n_control), effect_size=float(r.effect_size),
            effect_size_name=r.effect_size_name, method=r.method, comparison=r.comparison, expected_sign=sign, verdict=verdict,
            red_flag=verdict == PLACEBO_EFFECT, equivalent=tost.get((r.experiment, r.outcome, r.arm)),
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
    return next((v for v in (EFFECT, EFFECT_OPPOSITE) if v in verdicts), NO_EFFECT)


def item_noun(kind: str) -> tuple[str, str]:
    """(singular, plural) the kind calls one item; ("item", "items") if the kind cannot be
    loaded here (a user kind whose package this machine lacks)."""
    from designkit.kinds import KINDS

    try:
        singular, plural = KINDS.get(kind).item_noun
    except InputError:
        return "item", "items"
    return str(singular), str(plural)


def treatment(kind: str, params: Mapping[str, Any] | None = None) -> str:
    """The kind's treatment phrase for the report (``ExperimentKind.treatment``); the insertion
    phrase if the kind cannot be loaded here. With the experiment's ``params`` the phrase is
    the instance's: a kind may choose its edit from them (texts' ``replace``, watermark's ``target``)."""
    from designkit import schema
    from designkit.kinds import KINDS
    from designkit.kinds.base import TREATMENT_BY_EDIT

    try:
        kind_class = KINDS.get(kind)
    except InputError:
        return TREATMENT_BY_EDIT["insert"]
    chosen = kind_class
    if params is not None:
        try:
            chosen = kind_class(schema.from_dict(kind_class.Params, dict(params), None, "params"))
        except InputError:
            pass  # params this version cannot read: the kind's default phrase
    return str(chosen.treatment or TREATMENT_BY_EDIT.get(chosen.edit, TREATMENT_BY_EDIT["insert"]))


def _experiment_info(entry: Mapping[str, Any], spec: ExperimentSpec, verdicts: pd.DataFrame) -> dict[str, Any]:
    mine = verdicts[verdicts["experiment"] == spec.name] if len(verdicts) else verdicts
    arm_verdicts = [str(v) for v in mine["verdict"]] if len(mine) else []
    equivalent = None
    if spec.placebo and len(mine) and not mine["equivalent"].isna().all():
        equivalent = bool(mine["equivalent"].eq(True).all())
    return {
        "name": spec.name,
        "kind": spec.kind,
        "item_noun": item_noun(spec.kind),
        "treatment": treatment(spec.kind, spec.params),
        "placebo": spec.placebo,
        "control_arm": spec.control_arm,
        "primary_outcome": spec.primary_outcome.name if spec.primary_outcome else None,
        "arms": {name: {k: arm.get(k) for k in ("dose", "n_items", "inserted", "window", "share")}
                 for name, arm in (entry.get("arms") or {}).items()},
        "outcomes": [{k: o.get(k) for k in ("name", "type", "primary", "expected_sign", "description", "probe", "column",
                                            "baseline", "estimator")} for o in entry.get("outcomes", [])],
        "verdict": experiment_verdict(arm_verdicts, spec.placebo, spec.control_arm is not None),
        "equivalent": equivalent,
        "red_flag": bool(len(mine) and mine["red_flag"].any()),
    }


def _check_score_items(run: RunDir, scores: pd.DataFrame, items: pd.DataFrame) -> None:
    keys = scores[["item_index", "item_id", "experiment"]].drop_duplicates()
    known = items[["item_index", "item_id", "experiment"]].astype({"item_index": "int32", "item_id": str, "experiment": str})
    merged = keys.merge(known, on="item_index", how="left", suffixes=("", "_plan"))
    bad = merged[(merged["item_id"] != merged["item_id_plan"]) | (merged["experiment"] != merged["experiment_plan"])]
    if len(bad):
        row = bad.iloc[0]
        raise InputError(run.path / "scores", "item_id",
                         f"expected the items of this run's plan; item_index {int(row['item_index'])} is {row['item_id']!r} in "
                         f"the scores and {row['item_id_plan']!r} in the plan (re-score with designkit score {run.path} --force)")


def _identity(run: RunDir, plan: Any, steps: list[int], score_steps: list[int], applied: AppliedCheck) -> dict[str, Any]:
    meta = plan.meta
    settings_keys = ("devices", "num_nodes", "world_size", "strategy", "accelerator", "precision", "micro_batch_size", "compile")
    geometry_keys = ("seq_len", "global_batch", "steps", "n_sequences", "total_tokens")
    return {
        "plan_name": meta.get("name"),
        "plan_seed": meta.get("seed"),
        "description": (meta.get("design") or {}).get("description", ""),
        "plan_hash": plan.hash,
        "run_plan_hash": run.plan_hash,
        "plan_hash_matches": plan.hash == run.plan_hash,
        "plan_path": str(plan.path.resolve()),
        "run_path": str(run.path.resolve()),
        "plan_designkit_version": meta.get("designkit_version"),
        "run_designkit_version": run.meta.get("designkit_version"),
        "analysis_designkit_version": designkit.__version__,
        "corpus_source": (meta.get("corpus") or {}).get("source"),
        "corpus_fingerprint": (meta.get("corpus") or {}).get("fingerprint"),
        "geometry": {k: v for k, v in (meta.get("geometry") or {}).items() if k in geometry_keys},
        "checkpoint_steps": steps,
        "scored_steps": score_steps,
        "ignored_score_steps": [s for s in score_steps if s not in steps],
        "run_settings": {k: run.meta[k] for k in settings_keys if k in run.meta},
        "resumes": len(run.meta.get("resumes") or []),
        "applied_log": applied.to_json(),
    }
