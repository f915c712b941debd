"""Dose-response GLMs: how an item's outcome changes with the number of insertions.

Two models per experiment and outcome, both fit on item-level rows:

- `log1p_dose`: outcome ~ log(1 + dose). Doses are spaced geometrically in the paper's
  designs (0, 1, 4, 16, ...), so one slope per e-fold of dose summarizes the curve.
- `dose_categorical`: outcome ~ C(dose) with treatment coding against the lowest dose
  (dose 0, the control arm), one free mean per dose; no shape assumed.

Binary outcomes use a Binomial GLM (logit link), continuous ones a Gaussian GLM (identity
link). When several checkpoints are pooled, each item appears once per step, so the model
adds step fixed effects (reference: the last step) and the standard errors are
cluster-robust by item. The same cluster-robust covariance is used for a single step: with
one row per item it reduces to a heteroscedasticity-robust (HC1-type) covariance, which
protects the Gaussian model against treated arms being more variable than the control.

The placebo arm of a placebo experiment enters with its nominal dose, so the fitted slope
is the placebo's (expected null) dose-response.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.genmod import families as glm_families
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from designkit.plan_types import ExperimentSpec
from designkit.analysis.tidy import to_frame

SLOPE_MODEL = "log1p_dose"
CATEGORICAL_MODEL = "dose_categorical"
MODELS: tuple[str, ...] = (SLOPE_MODEL, CATEGORICAL_MODEL)
SLOPE_TERM = "log1p(dose)"
INTERCEPT_TERM = "Intercept"
STEP_PREFIX = "step="


@dataclass(frozen=True)
class DoseTerm:
    """One coefficient of a dose-response GLM, on the link scale."""

    experiment: str
    outcome: str
    model: str
    """`log1p_dose` or `dose_categorical`."""
    term: str
    """`Intercept`, `log1p(dose)`, or `dose=K` (dose K vs the reference dose)."""
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    n_obs: int
    n_clusters: int
    """Distinct items; the clusters of the robust covariance."""
    n_steps: int
    glm_family: str
    """`binomial` (logit link, log-odds scale) or `gaussian` (identity link)."""
    cov_type: str
    alpha: float
    note: str = ""


def fit_dose_response(frame: pd.DataFrame, outcome_type: str, **options: Any) -> pd.DataFrame:
    """The tidy terms of `fit_dose_response_models` (one row per `DoseTerm`)."""
    return fit_dose_response_models(frame, outcome_type, **options)[0]


def fit_dose_response_models(
    frame: pd.DataFrame,
    outcome_type: str,
    *,
    experiment: str = "",
    outcome: str = "",
    steps: Sequence[int] | None = None,
    alpha: float = 0.05,
    models: Sequence[str] = MODELS,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit the dose-response GLMs of one experiment's outcome: (terms, {model: GLM results}).

    `frame` has one row per item and step with columns `dose, item_index, step, value`
    (the long outcome frame restricted to one experiment and outcome). `steps=None` uses
    the last step only; pass several steps to pool checkpoints. Step fixed-effect terms are
    not returned. With perfect separation (e.g. every treated item correct, every control
    item wrong) the Wald statistics are meaningless, so se, CI and p are NaN and `note`
    says so. The fitted statsmodels results are returned as they are (`predict` works).
    """
    if outcome_type not in ("binary", "continuous"):
        raise ValueError(f"expected outcome_type 'binary' or 'continuous', got {outcome_type!r}")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"expected models from {MODELS}, got {unknown}")
    data = _model_frame(frame, steps)
    if outcome_type == "binary" and not data["y"].isin((0.0, 1.0)).all():
        raise ValueError("expected binary outcome values in {0, 1}")
    glm_family = "binomial" if outcome_type == "binary" else "gaussian"
    labels = dict(experiment=experiment, outcome=outcome, n_obs=len(data),
                  n_clusters=int(data["item"].nunique()), n_steps=int(data["step"].nunique()),
                  glm_family=glm_family, cov_type="cluster", alpha=alpha)
    terms: list[DoseTerm] = []
    fits: dict[str, Any] = {}
    for model in models:
        if data["dose"].nunique() < 2:
            terms.append(DoseTerm(model=model, term=SLOPE_TERM if model == SLOPE_MODEL else "dose",
                                  **_nan_stats(), **labels, note="fewer than 2 distinct doses"))
            continue
        model_terms, fits[model] = _fit_one(data, model, labels)
        terms.extend(model_terms)
    return to_frame(terms, DoseTerm), fits


def dose_response_table(frame: pd.DataFrame, experiments: Sequence[ExperimentSpec], **options: Any) -> pd.DataFrame:
    """`fit_dose_response` for every experiment and outcome with at least 2 scored doses."""
    return DoseResponse.fit(frame, experiments, **options).table


@dataclass(frozen=True, eq=False)
class DoseResponse:
    """The dose-response fits of a run: tidy terms plus the fitted statsmodels GLM results."""

    table: pd.DataFrame
    """One row per `DoseTerm` of every fit."""
    fits: dict[tuple[str, str, str], Any] = field(default_factory=dict, repr=False)
    """(experiment, outcome, model) -> statsmodels `GLMResults` (`predict`, `summary()`, ...)."""

    @classmethod
    def fit(cls, frame: pd.DataFrame, experiments: Sequence[ExperimentSpec], *, steps: Sequence[int] | None = None,
            alpha: float = 0.05, models: Sequence[str] = MODELS) -> DoseResponse:
        """Fit every outcome of every experiment with at least 2 scored doses, one outcome at a time.

        statsmodels' GLM raises (rather than warns) on some degenerate outcomes, e.g. a
        continuous outcome with no variation at all; that outcome gets a NaN row with a note
        instead of sinking the others.
        """
        parts, fits = [], {}
        for spec in experiments:
            rows = frame[frame["experiment"] == spec.name]
            if rows["dose"].nunique() < 2:
                continue
            for outcome in spec.outcomes:
                of_outcome = rows[rows["outcome"] == outcome.name]
                if of_outcome.empty:
                    continue
                try:
                    table, fitted = fit_dose_response_models(of_outcome, outcome.type, experiment=spec.name,
                                                             outcome=outcome.name, steps=steps, alpha=alpha, models=models)
                except (ValueError, np.linalg.LinAlgError) as exc:
                    family = "binomial" if outcome.type == "binary" else "gaussian"
                    note = f"GLM could not be fit: {exc}".replace("\n", " ")
                    table, fitted = to_frame([DoseTerm(
                        experiment=spec.name, outcome=outcome.name, model=SLOPE_MODEL, term=SLOPE_TERM, **_nan_stats(),
                        n_obs=0, n_clusters=0, n_steps=0, glm_family=family, cov_type="cluster", alpha=alpha,
                        note=note)], DoseTerm), {}
                parts.append(table)
                fits.update({(spec.name, outcome.name, model): fit for model, fit in fitted.items()})
        return cls(pd.concat(parts, ignore_index=True) if parts else to_frame([], DoseTerm), fits)

    def results(self, experiment: str, outcome: str, model: str = SLOPE_MODEL) -> Any:
        """The fitted statsmodels results of one model."""
        return self.fits[(experiment, outcome, model)]

    def predict(self, experiment: str, outcome: str, doses: Sequence[float]) -> np.ndarray:
        """Mean outcome the `log1p_dose` GLM predicts at `doses` at the last pooled step (a rate
        for binary outcomes), through the fitted results' own `predict`."""
        fit = self.results(experiment, outcome, SLOPE_MODEL)
        doses = np.asarray(doses, dtype=float)
        exog = pd.DataFrame(0.0, index=np.arange(doses.size), columns=fit.model.exog_names)
        exog[INTERCEPT_TERM] = 1.0
        exog[SLOPE_TERM] = np.log1p(doses)
        return np.asarray(fit.predict(exog), dtype=float)

    def curves(self, frame: pd.DataFrame, points: int = 60) -> pd.DataFrame:
        """The `log1p_dose` fit's predicted mean from dose 0 to the largest dose, per usable fit."""
        parts = []
        slopes = self.table[self.table["model"] == SLOPE_MODEL]
        for (experiment, outcome), rows in slopes.groupby(["experiment", "outcome"], sort=False):
            if rows["note"].astype(bool).any() or (experiment, outcome, SLOPE_MODEL) not in self.fits:
                continue
            max_dose = float(frame.loc[frame["experiment"] == experiment, "dose"].max())
            doses = np.expm1(np.linspace(0.0, math.log1p(max_dose), points))
            parts.append(pd.DataFrame({"experiment": experiment, "outcome": outcome, "dose": doses,
                                       "predicted": self.predict(experiment, outcome, doses)}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["experiment", "outcome", "dose", "predicted"])


def _model_frame(frame: pd.DataFrame, steps: Sequence[int] | None) -> pd.DataFrame:
    missing = [c for c in ("dose", "item_index", "step", "value") if c not in frame.columns]
    if missing:
        raise ValueError(f"expected columns dose, item_index, step, value; missing {missing}")
    rows = frame.dropna(subset=["value"])
    if steps is None:
        rows = rows[rows["step"] == rows["step"].max()]
    else:
        rows = rows[rows["step"].isin(list(steps))]
    # Fixed column names keep user-chosen names out of the formulas.
    return pd.DataFrame({
        "y": rows["value"].to_numpy(float),
        "dose": rows["dose"].to_numpy(int),
        "step": rows["step"].to_numpy(int),
        "item": rows["item_index"].to_numpy(),
    })


def _fit_one(data: pd.DataFrame, model: str, labels: dict) -> tuple[list[DoseTerm], Any]:
    design = _design_matrix(data, model)
    family = glm_families.Binomial() if labels["glm_family"] == "binomial" else glm_families.Gaussian()
    groups = pd.factorize(data["item"])[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = GLM(data["y"].to_numpy(), design, family=family).fit(
            cov_type="cluster", cov_kwds={"groups": groups}
        )
        ci = np.asarray(result.conf_int(alpha=labels["alpha"]))
    note = _fit_problem(caught)
    terms = []
    for i, name in enumerate(design.columns):
        if name.startswith(STEP_PREFIX):
            continue
        stats = dict(estimate=float(result.params.iloc[i]), se=float(result.bse.iloc[i]),
                     ci_low=float(ci[i, 0]), ci_high=float(ci[i, 1]), p=float(result.pvalues.iloc[i]))
        if note:
            stats.update(se=math.nan, ci_low=math.nan, ci_high=math.nan, p=math.nan)
        terms.append(DoseTerm(model=model, term=name, **stats, **labels, note=note))
    return terms, result


def _design_matrix(data: pd.DataFrame, model: str) -> pd.DataFrame:
    """Intercept, the dose term(s), and step indicators; columns are the tidy term names.

    Categorical doses use treatment coding against the lowest dose; steps against the last
    step, so the intercept (and `DoseResponse.predict`) refers to the final checkpoint.
    """
    columns: dict[str, np.ndarray] = {INTERCEPT_TERM: np.ones(len(data))}
    dose = data["dose"].to_numpy()
    if model == SLOPE_MODEL:
        columns[SLOPE_TERM] = np.log1p(dose.astype(float))
    else:
        for level in np.unique(dose)[1:]:
            columns[f"dose={level}"] = (dose == level).astype(float)
    step = data["step"].to_numpy()
    for level in np.unique(step)[:-1]:
        columns[f"{STEP_PREFIX}{level}"] = (step == level).astype(float)
    return pd.DataFrame(columns)


def _fit_problem(caught: list[warnings.WarningMessage]) -> str:
    for w in caught:
        if issubclass(w.category, PerfectSeparationWarning):
            return "perfect separation: coefficients not identified, Wald inference withheld"
        if issubclass(w.category, ConvergenceWarning):
            return f"GLM did not converge: {w.message}"
    return ""


def _nan_stats() -> dict[str, float]:
    return dict(estimate=math.nan, se=math.nan, ci_low=math.nan, ci_high=math.nan, p=math.nan)
