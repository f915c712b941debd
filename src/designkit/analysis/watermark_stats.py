"""Estimators of the Gaussian-watermark statistic (GW): four registered classes.

Each item's statistic x (probe ``watermark_gradient``) is exactly N(0, 1) when its watermark
was never trained on, and training pushes it negative (``designkit.probes.watermark``). So
every test here is against the known null N(0, 1), one-sided toward x < 0 (Pawelczyk et al.
2024; Bordt & Pawelczyk 2025), and the control arm's never-trained watermarks check that the
null holds:

- ``watermark_shift``: the fitted mean shift mu of an arm (x ~ N(mu, s^2)), its t interval, and
  the one-sided one-sample t-test of mu < 0 (``scipy.stats.ttest_1samp``);
- ``watermark_item_p``: each item's one-sided p = Phi(x) (``item_p_values``); per arm, the
  share of items with p < alpha, its Wilson interval, and the exact binomial test of that
  share against alpha, its rate under the null;
- ``watermark_tpr``: the true-positive rate at a 1% false-positive rate, i.e. the share of an
  arm's items below Phi^-1(0.01), with a BCa bootstrap CI (``scipy.stats.bootstrap``)
  and the binomial test against 1%; on the control arm the row is the realised FPR;
- ``watermark_calibration``: the KS test of the control arm against N(0, 1) (``ks_normal``).
  A rejection means the statistic is miscalibrated and every p-value above is suspect: the
  report raises it as a red flag.
"""

from __future__ import annotations

import math
import zlib
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, Effect, finite_values
from designkit.analysis.estimator import EstimationTask, Estimator, ReportSection, register_estimator
from designkit.analysis.ks_normal import REFERENCE, VS_NORMAL, KsNormal
from designkit.analysis.options import AnalysisOptions

FPR = 0.01
"""The false-positive rate at which ``watermark_tpr`` reads the detection rate."""
THRESHOLD = float(stats.norm.ppf(FPR))
"""x below this is detected: under N(0, 1), P(x < THRESHOLD) = FPR."""


def item_p_values(x: np.ndarray) -> np.ndarray:
    """One-sided p of each item's statistic, H1: the watermark was learned (x < 0): Phi(x)."""
    return stats.norm.cdf(np.asarray(x, dtype=float))


def mean_shift(x: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(mu, ci_low, ci_high, one-sided p of mu < 0) from a one-sample t-test of ``x``."""
    x = finite_values(x)
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan, math.nan, math.nan
    interval = stats.ttest_1samp(x, 0.0).confidence_interval(1 - alpha)
    p = float(stats.ttest_1samp(x, 0.0, alternative="less").pvalue)
    return float(x.mean()), float(interval.low), float(interval.high), p


def detection_share(x: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float, int]:
    """(share of items with p < alpha, Wilson interval, exact binomial p against alpha, count)."""
    x = finite_values(x)
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    k = int((item_p_values(x) < alpha).sum())
    low, high = proportion_confint(k, x.size, alpha=alpha, method="wilson")
    return k / x.size, float(low), float(high), float(stats.binomtest(k, x.size, alpha, alternative="greater").pvalue), k


def tpr_at_fpr(x: np.ndarray, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float, float]:
    """(share of ``x`` below the N(0, 1) 1% quantile, BCa bootstrap CI, binomial p against 1%)."""
    x = finite_values(x)
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    detected = (x < THRESHOLD).astype(float)
    k = int(detected.sum())
    p = float(stats.binomtest(k, x.size, FPR, alternative="greater").pvalue)
    if x.size < 2 or k in (0, x.size):
        # every resample equals the sample: the bootstrap interval is the point (scipy warns, gives NaN)
        return k / x.size, k / x.size, k / x.size, p
    # BCa: the percentile interval of a proportion undercovers at small n (9% misses at n = 30
    # for a nominal 5%, by simulation; BCa 4%)
    ci = stats.bootstrap((detected,), np.mean, confidence_level=1 - alpha, method="BCa",
                         n_resamples=2000, random_state=np.random.default_rng(seed)).confidence_interval
    return k / x.size, float(ci.low), float(ci.high), p


def _arm_rows(frame: pd.DataFrame, task: EstimationTask):
    """(step, arm, dose, values, is confirmatory claim) over every step and declared arm."""
    spec, outcome = task.experiment, task.outcome
    for step, at_step in frame.groupby("step", sort=True):
        by_arm = {str(arm): g["value"].to_numpy(float) for arm, g in at_step.groupby("arm")}
        for arm, dose in sorted(task.arm_doses.items()):
            values = finite_values(by_arm.get(arm, np.empty(0)))
            claim = outcome.primary and int(step) == task.final_step and arm != spec.control_arm
            yield int(step), arm, int(dose), values, claim


def _effect(task: EstimationTask, name: str, step: int, arm: str, dose: int, values: np.ndarray, claim: bool, *,
            estimate: float, low: float, high: float, p: float, effect_size: float, effect_size_name: str,
            method: str, reference: str = REFERENCE, control_mean: float = 0.0, note: str = "") -> Effect:
    spec, outcome = task.experiment, task.outcome
    return Effect(
        experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm, control_arm=reference,
        dose=dose, step=step, estimate=estimate, ci_low=low, ci_high=high, p=p, n_treated=int(values.size), n_control=0,
        treated_mean=float(values.mean()) if values.size else math.nan, control_mean=control_mean,
        effect_size=effect_size, effect_size_name=effect_size_name, method=method, alpha=task.options.alpha,
        estimator=name, comparison=VS_NORMAL, primary=outcome.primary, family=CONFIRMATORY if claim else EXPLORATORY,
        note=note or ("no scored items" if values.size == 0 else ""),
    )


@register_estimator
class WatermarkShift(Estimator):
    """Each arm's mean watermark statistic against the null mean 0: mu, t CI, one-sided t-test."""

    name = "watermark_shift"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)
    needs_control = False

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        effects = []
        for step, arm, dose, values, claim in _arm_rows(frame, task):
            mu, low, high, p = mean_shift(values, task.options.alpha)
            effects.append(_effect(task, self.name, step, arm, dose, values, claim, estimate=mu, low=low, high=high, p=p,
                                   effect_size=mu, effect_size_name="mean_shift_sd", method="one_sample_t_less"))
        return effects


@register_estimator
class WatermarkItemP(Estimator):
    """Per-item one-sided p = Phi(x); per arm the share detected at alpha against its null rate alpha."""

    name = "watermark_item_p"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)
    needs_control = False

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        alpha = task.options.alpha
        effects = []
        for step, arm, dose, values, claim in _arm_rows(frame, task):
            share, low, high, p, k = detection_share(values, alpha)
            effects.append(_effect(task, self.name, step, arm, dose, values, claim, estimate=share, low=low, high=high,
                                   p=p, effect_size=share - alpha, effect_size_name="detected_minus_alpha",
                                   method="phi_p_per_item+wilson+binomial", reference=f"alpha={alpha:g}",
                                   control_mean=alpha, note=f"{k} of {values.size} items with one-sided p < {alpha:g}"))
        return effects

    def figures(self, effects: pd.DataFrame, frame: pd.DataFrame, options: AnalysisOptions) -> list:
        """Per experiment: each arm's sorted per-item p-values at the final step against the uniform."""
        from designkit.analysis.figures import ARM_COLORS, FigureFile, new_figure, png_bytes

        out = []
        for experiment, rows in effects.groupby("experiment", sort=False):
            step = int(rows["step"].max())
            at_step = frame[(frame["experiment"] == experiment) & (frame["step"] == step)
                            & frame["outcome"].isin(set(rows["outcome"]))]
            fig = new_figure(3.6, 3.0)
            ax = fig.subplots()
            ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="uniform (never trained)")
            for i, (arm, values) in enumerate(at_step.groupby("arm")["value"]):
                p = np.sort(item_p_values(finite_values(values.to_numpy(float))))
                ax.step((np.arange(1, p.size + 1)) / p.size, p, where="post", color=ARM_COLORS[i % len(ARM_COLORS)], label=arm)
            ax.set_xlabel("item rank / n")
            ax.set_ylabel("one-sided p = Phi(x)")
            ax.legend(fontsize=7, frameon=False)
            ax.grid(alpha=0.3)
            out.append(FigureFile(f"watermark_p_{experiment}.png", f"{experiment}: per-item watermark p-values",
                                  f"Each item's one-sided p-value at step {step}, sorted, per arm; never-trained "
                                  "watermarks follow the diagonal, learned ones bend toward 0.", png_bytes(fig), str(experiment)))
        return out


@register_estimator
class WatermarkTpr(Estimator):
    """Detection rate at a 1% false-positive rate (threshold from N(0, 1)) with a bootstrap CI."""

    name = "watermark_tpr"
    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)
    needs_control = False

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        effects = []
        for step, arm, dose, values, claim in _arm_rows(frame, task):
            tpr, low, high, p = tpr_at_fpr(values, task.options.alpha, _seed(task, arm, step))
            role = "realised FPR (control)" if arm == task.experiment.control_arm else "TPR"
            effects.append(_effect(task, self.name, step, arm, dose, values, claim, estimate=tpr, low=low, high=high, p=p,
                                   effect_size=tpr - FPR, effect_size_name="tpr_minus_fpr",
                                   method="x<Phi^-1(0.01)+bootstrap_bca+binomial", reference=f"FPR={FPR:g}",
                                   control_mean=FPR, note=f"{role} at threshold x < {THRESHOLD:.3f}"))
        return effects


def _seed(task: EstimationTask, arm: str, step: int) -> int:
    """A bootstrap seed from the options' root seed and the row's labels (stable across processes)."""
    return (task.options.seed * 1_000_003 + zlib.crc32(f"{task.experiment.name}/{arm}/{step}".encode())) % 2**32


@register_estimator
class WatermarkCalibration(KsNormal):
    """KS test of the control arm's never-trained watermark statistics against N(0, 1)."""

    name = "watermark_calibration"
    needs_control = True

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        control = task.experiment.control_arm
        rows = []
        for effect in super().estimate(frame, task):
            if effect.arm != control:
                continue
            miscalibrated = effect.p < task.options.alpha
            note = (f"MISCALIBRATED: never-trained watermark statistics are not N(0, 1) (KS p = {effect.p:.3g})"
                    if miscalibrated else effect.note)
            # the check is a diagnostic of the statistic, never a claim about an effect
            rows.append(Effect(**{**effect.__dict__, "family": EXPLORATORY, "note": note}))
        return rows

    def sections(self, effects: pd.DataFrame, options: AnalysisOptions) -> list[ReportSection]:
        table = effects[["experiment", "outcome", "arm", "step", "n_treated", "treated_mean", "estimate", "ci_low",
                         "ci_high", "p", "note"]].rename(columns={"estimate": "ks_distance", "n_treated": "n", "treated_mean": "mean"})
        return [ReportSection(
            title="Watermark calibration (control statistics against N(0, 1))",
            intro=("The watermark statistic of a never-trained watermark is N(0, 1) by construction. Each row is the "
                   "Kolmogorov-Smirnov test of a control arm at one checkpoint; a rejection means the statistic is "
                   "miscalibrated and the watermark p-values cannot be trusted."),
            table=table.reset_index(drop=True),
        )]

    def red_flags(self, effects: pd.DataFrame, options: AnalysisOptions) -> list[str]:
        bad = effects[effects["note"].astype(str).str.startswith("MISCALIBRATED")]
        return [f"{r.experiment}: watermark statistic MISCALIBRATED at step {r.step}: control statistics are not "
                f"N(0, 1) (KS D = {r.estimate:.3f}, p = {r.p:.3g}); its watermark p-values are not valid"
                for r in bad.itertuples()]
