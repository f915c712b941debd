"""Membership-inference estimators: AUC, TPR at a fixed FPR, and Carlini's exposure.

Each treated arm's items are members, the control arm's items are non-members, and the
outcome (a loss, a Min-K% score, …) is the attack score, oriented by the outcome's
``expected_sign`` so that a larger oriented score means "member" (a loss, expected to fall,
is negated). One row per treated arm and checkpoint:

- ``auc``: the area under the ROC curve, AUC = U / (n1 n2) with U the Mann-Whitney
  statistic of members against non-members (``scipy.stats.mannwhitneyu``, whose two-sided p
  is the row's p); its normal CI from DeLong et al.'s (1988) variance, clipped to [0, 1]
  (by simulation it covers 0.5 in 93.6% of null draws of 25 + 25 items at 95%: slightly
  short, as every normal AUC interval is at small n). 0.5 is chance. Effect size: the AUC.
- ``tpr_at_fpr``: the true-positive rate at a 1% false-positive rate (Carlini et al. 2022,
  "Membership inference attacks from first principles"): the threshold is the control
  arm's (1 - FPR) quantile (``method="higher"``: at most 1% of non-members lie above it),
  the TPR is the share of members above it. CI: percentile bootstrap resampling both arms
  (``scipy.stats.bootstrap``; the threshold is re-estimated each time); p: a two-sided
  permutation test of the TPR (``scipy.stats.permutation_test``), exact under exchangeable
  arms even when the control arm is too small to pin down a 1% quantile. (The watermark's
  ``watermark_tpr`` thresholds at a known N(0, 1) null; a membership score has no known
  null, so this one takes its threshold from the never-inserted items.)
- ``exposure``: Carlini et al. (2019, "The Secret Sharer") exposure,
  log2|R| - log2 rank, with the rank of a canary among all possible ones estimated by
  extrapolation as they do: fit a distribution to the never-inserted (control) canaries'
  log-perplexities and read rank / |R| as its CDF at the canary, so exposure = -log2 F(x).
  We fit a normal (closed form, so the bootstrap refits it every resample; Carlini et al.
  use a skew-normal, which changes the tail little at the sample sizes here). Fits are
  per stratum (canary length, type and carrier change the log-perplexity's scale); the
  estimate is the mean exposure of the arm minus the control arm's (whose expectation is
  1/ln 2 ≈ 1.44 bits), CI a percentile bootstrap over items, p the two-sided
  Mann-Whitney test of the raw scores.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from designkit.analysis.effects import CONFIRMATORY, EXPLORATORY, Effect, finite_values, labelled_seed
from designkit.analysis.estimator import EstimationTask, Estimator, register_estimator

FPR = 0.01
"""The false-positive rate at which ``tpr_at_fpr`` reads the true-positive rate."""
MAX_RESAMPLES = 1999
"""Bootstrap and permutation resamples per row (capped: one row per arm, step and outcome)."""


def auc_delong(members: np.ndarray, nonmembers: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(AUC, ci_low, ci_high, two-sided Mann-Whitney p) of ``members`` scoring above ``nonmembers``.

    AUC = U / (n1 n2) (``scipy.stats.mannwhitneyu``); the CI is normal with DeLong et al.'s
    (1988) variance from the placement values (each member's share of non-members below it,
    and vice versa), clipped to [0, 1].
    """
    x, y = finite_values(members), finite_values(nonmembers)
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return math.nan, math.nan, math.nan, math.nan
    test = stats.mannwhitneyu(x, y, alternative="two-sided")
    auc = float(test.statistic) / (n1 * n2)
    pooled = stats.rankdata(np.concatenate([x, y]))
    placement_members = (pooled[:n1] - stats.rankdata(x)) / n2
    placement_nonmembers = 1 - (pooled[n1:] - stats.rankdata(y)) / n1
    se = math.sqrt(placement_members.var(ddof=1) / n1 + placement_nonmembers.var(ddof=1) / n2)
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    return auc, max(0.0, auc - half), min(1.0, auc + half), float(test.pvalue)


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float = FPR, axis: int = -1) -> np.ndarray:
    """Share of ``members`` above the (1 - fpr) quantile of ``nonmembers`` (vectorized over ``axis``)."""
    threshold = np.quantile(nonmembers, 1 - fpr, axis=axis, method="higher", keepdims=True)
    return np.mean(members > threshold, axis=axis)


def exposure_bits(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Carlini's exposure of each (oriented) score against a normal fitted to ``reference``:
    -log2 of the fitted probability that a never-inserted canary scores at least as high."""
    mean, sd = float(np.mean(reference)), float(np.std(reference, ddof=1))
    return -stats.norm.logsf(np.asarray(scores, dtype=float), loc=mean, scale=sd) / math.log(2)


class MembershipEstimator(Estimator):
    """Members (a treated arm) against non-members (the control arm), one row per arm and step."""

    outcome_types: ClassVar[tuple[str, ...]] = ("continuous",)
    signed = False
    effect_size_name: ClassVar[str] = ""
    method: ClassVar[str] = ""

    def compare(self, members: np.ndarray, nonmembers: np.ndarray, alpha: float, seed: int,
                n_resamples: int) -> tuple[float, float, float, float, float, float, str]:
        """(estimate, ci_low, ci_high, p, members' mean, non-members' mean, note) on oriented scores."""
        raise NotImplementedError

    def estimate(self, frame: pd.DataFrame, task: EstimationTask) -> list[Effect]:
        spec, outcome, options = task.experiment, task.outcome, task.options
        sign = float(outcome.expected_sign)
        n_resamples = min(options.n_resamples, MAX_RESAMPLES)
        effects = []
        for step, at_step in frame.groupby("step", sort=True):
            control = at_step[at_step["arm"] == spec.control_arm]
            for arm in task.treated_arms:
                treated = at_step[at_step["arm"] == arm]
                seed = labelled_seed(options.seed, spec.name, outcome.name, arm, int(step))
                parts = self.pairs(treated, control)
                members = np.concatenate([sign * finite_values(m) for m, _ in parts]) if parts else np.empty(0)
                nonmembers = np.concatenate([sign * finite_values(n) for _, n in parts]) if parts else np.empty(0)
                if min(members.size, nonmembers.size) < 2:
                    estimate = low = high = p = mean_t = mean_c = math.nan
                    note = "fewer than 2 items in an arm"
                else:
                    estimate, low, high, p, mean_t, mean_c, note = self.compare_parts(parts, sign, options.alpha, seed, n_resamples)
                confirmatory = outcome.primary and int(step) == task.final_step
                effects.append(Effect(
                    experiment=spec.name, outcome=outcome.name, outcome_type=outcome.type, arm=arm,
                    control_arm=spec.control_arm, dose=int(task.arm_doses[arm]), step=int(step),
                    estimate=estimate, ci_low=low, ci_high=high, p=p,
                    n_treated=int(members.size), n_control=int(nonmembers.size), treated_mean=mean_t,
                    control_mean=mean_c, effect_size=estimate, effect_size_name=self.effect_size_name,
                    method=self.method, alpha=options.alpha, estimator=self.name, primary=outcome.primary,
                    family=CONFIRMATORY if confirmatory else EXPLORATORY, note=note,
                ))
        return effects

    def pairs(self, treated: pd.DataFrame, control: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (members, non-members) value arrays compared: the whole arms by default."""
        return [(treated["value"].to_numpy(float), control["value"].to_numpy(float))]

    def compare_parts(self, parts, sign: float, alpha: float, seed: int, n_resamples: int):
        members = sign * finite_values(parts[0][0])
        nonmembers = sign * finite_values(parts[0][1])
        return self.compare(members, nonmembers, alpha, seed, n_resamples)


@register_estimator
class Auc(MembershipEstimator):
    """Membership AUC = U / (n1 n2), DeLong CI, Mann-Whitney p."""

    name = "auc"
    effect_size_name = "auc"
    method = "mann_whitney_auc+delong_ci"

    def compare(self, members, nonmembers, alpha, seed, n_resamples):
        auc, low, high, p = auc_delong(members, nonmembers, alpha)
        return auc, low, high, p, float(members.mean()), float(nonmembers.mean()), ""


@register_estimator
class TprAtFpr(MembershipEstimator):
    """TPR at 1% FPR (threshold from the control arm), percentile bootstrap CI, permutation p."""

    name = "tpr_at_fpr"
    effect_size_name = "tpr_at_1pct_fpr"
    method = "tpr_at_1pct_fpr+bootstrap_ci+permutation_test"

    def compare(self, members, nonmembers, alpha, seed, n_resamples):
        rng = np.random.default_rng(seed)
        tpr = float(tpr_at_fpr(members, nonmembers))
        boot = stats.bootstrap((members, nonmembers), tpr_at_fpr, n_resamples=n_resamples, vectorized=True,
                               paired=False, confidence_level=1 - alpha, method="percentile", rng=rng)
        perm = stats.permutation_test((members, nonmembers), tpr_at_fpr, permutation_type="independent",
                                      n_resamples=n_resamples, vectorized=True, alternative="two-sided", rng=rng)
        return (tpr, float(boot.confidence_interval.low), float(boot.confidence_interval.high), float(perm.pvalue),
                float(members.mean()), float(nonmembers.mean()), "")


@register_estimator
class Exposure(MembershipEstimator):
    """Carlini's exposure (bits) of each arm minus the control arm's, normal fit to the
    control canaries of each stratum, percentile bootstrap CI, Mann-Whitney p."""

    name = "exposure"
    effect_size_name = "exposure_bits"
    method = "exposure_normal_fit+bootstrap_ci+mann_whitney"

    def pairs(self, treated, control):
        if "stratum" not in treated.columns:
            return super().pairs(treated, control)
        out = []
        for stratum, members in treated.groupby(treated["stratum"].fillna(""), sort=True):
            nonmembers = control[control["stratum"].fillna("") == stratum]
            if len(nonmembers) >= 2:  # a stratum without control canaries has nothing to fit
                out.append((members["value"].to_numpy(float), nonmembers["value"].to_numpy(float)))
        return out

    def compare_parts(self, parts, sign, alpha, seed, n_resamples):
        oriented = [(sign * finite_values(m), sign * finite_values(n)) for m, n in parts]
        members = np.concatenate([m for m, _ in oriented])
        nonmembers = np.concatenate([n for _, n in oriented])

        def difference(indices_m, indices_n):
            # one resample: every stratum's fit redone on resampled control canaries
            t = np.concatenate([exposure_bits(m[i], n[j]) for (m, n), i, j in zip(oriented, indices_m, indices_n)])
            c = np.concatenate([exposure_bits(n[j], n[j]) for (_, n), j in zip(oriented, indices_n)])
            return float(t.mean() - c.mean())

        full_m = [np.arange(m.size) for m, _ in oriented]
        full_n = [np.arange(n.size) for _, n in oriented]
        estimate = difference(full_m, full_n)
        treated_mean = float(np.concatenate([exposure_bits(m, n) for m, n in oriented]).mean())
        control_mean = float(np.concatenate([exposure_bits(n, n) for _, n in oriented]).mean())
        rng = np.random.default_rng(seed)
        draws = np.array([
            difference([rng.integers(m.size, size=m.size) for m, _ in oriented],
                       [rng.integers(n.size, size=n.size) for _, n in oriented])
            for _ in range(min(n_resamples, 999))
        ])
        draws = draws[np.isfinite(draws)]
        low, high = (np.quantile(draws, [alpha / 2, 1 - alpha / 2]) if draws.size else (math.nan, math.nan))
        p = float(stats.mannwhitneyu(members, nonmembers, alternative="two-sided").pvalue)
        return estimate, float(low), float(high), p, treated_mean, control_mean, ""
