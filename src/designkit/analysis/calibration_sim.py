"""Monte-Carlo calibration of the estimators: do they keep their promises?

Simulates item-level outcomes the way a run produces them (items randomized into a treated
and a control arm, a few checkpoints for dose-response) under the null and under known
effects, runs the package's own estimators, and measures:

- false-positive rate at alpha under A/A (should be alpha, within Monte-Carlo error);
- coverage of the 95% CIs of the true effect (should be 0.95);
- power at the planned MDE from `minimal_detectable_effect` (should be the planned 0.8);
- family-wise error rate of Holm-adjusted confirmatory families (at most alpha);
- size of the TOST at the equivalence margin (at most alpha).

Each metric is a proportion over `replicates`; its Monte-Carlo standard error (MCSE) is
computed at the target value, sqrt(t (1 - t) / replicates), i.e. the spread a perfectly
calibrated procedure would show. A check passes when the value lies within target +- z MCSE
(below target + z MCSE for FWER and TOST size, which may be conservative), where z is
Bonferroni-corrected over all checks (see `run_calibration`); coverage bands are never
narrower than 0.93-0.97 and power bands allow for the planner's approximations.
`analysis/calibration.py` prints the table; the tests run a reduced one.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from designkit.analysis.dose_response import SLOPE_MODEL, SLOPE_TERM, fit_dose_response
from designkit.analysis.effects import (
    CONFIRMATORY,
    Comparison,
    Effect,
    compare_binary,
    compare_continuous,
    effects_frame,
    labelled_seed,
)
from designkit.analysis.equivalence import tost_equivalence
from designkit.analysis.ks_normal import ks_standard_normal
from designkit.analysis.membership import auc_delong
from designkit.analysis.membership import tpr_at_fpr as membership_tpr
from designkit.analysis.watermark_stats import THRESHOLD, detection_share, mean_shift, tpr_at_fpr
from designkit.analysis.multiple_testing import adjust
from designkit.analysis.power_check import minimal_detectable_effect
from designkit.analysis.tidy import to_frame

ALPHA = 0.05
PLANNED_POWER = 0.8
COVERAGE_HALF_WIDTH = 0.02
"""Coverage must lie within 0.95 +- 0.02 (0.93-0.97) at least."""
POWER_APPROXIMATION = 0.03
"""Allowance for the planner's power formulas (arcsine z / noncentral t) vs the tests run."""
BINARY_BASELINE = 0.25
"""Control accuracy of a 4-choice benchmark item, the paper's contamination setting."""
FAMILYWISE_LEVEL = 0.05
"""Chance that calibrated estimators fail any check (sets the default z)."""
DOSES = (0, 1, 4, 16)
N_CHECKPOINTS = 3
FAMILY_SIZE = 10
"""Experiments in a simulated confirmatory family (the paper runs ten)."""
BINARY_SLOPE = 0.3
"""Log-odds per e-fold of (1 + dose)."""
CONTINUOUS_SLOPE = 0.2
"""Outcome units (SDs of item noise) per e-fold of (1 + dose)."""


@dataclass(frozen=True)
class Measurement:
    """A simulated proportion (of rejections, coverages, ...) and what it should be."""

    check: str
    estimator: str
    n_per_arm: int
    metric: str
    """`false_positive_rate`, `coverage`, `non_coverage`, `power`, `fwer` or `tost_size`."""
    value: float
    target: float
    replicates: int
    one_sided: bool = False
    """Only an excess over the target is a failure (FWER and TOST size may be conservative)."""
    floor: float = 0.0
    """Smallest half-width of the acceptance band, whatever the replicates."""
    allowance: float = 0.0
    """Extra half-width for a known approximation in the target."""

    @property
    def mcse(self) -> float:
        return math.sqrt(self.target * (1 - self.target) / self.replicates)


@dataclass(frozen=True)
class CalibrationCheck:
    """One simulated operating characteristic of one estimator, with its acceptance bounds."""

    check: str
    estimator: str
    n_per_arm: int
    metric: str
    value: float
    target: float
    mcse: float
    """Monte-Carlo SE at the target: sqrt(target (1 - target) / replicates)."""
    z: float
    lower: float
    upper: float
    replicates: int
    within_2mcse: bool
    """The value lies within target +- 2 MCSE (one-sided checks: below target + 2 MCSE)."""
    passed: bool
    """The value lies within [lower, upper]."""


def run_calibration(
    replicates: int = 500,
    seed: int = 0,
    *,
    z: float | None = None,
    sizes: Sequence[int] = (30, 100),
    glm_sizes: Sequence[int] | None = None,
    bootstrap: bool = False,
    bootstrap_resamples: int = 999,
) -> pd.DataFrame:
    """Run every calibration check; one row per `CalibrationCheck`.

    `sizes` are items per arm for the two-sample estimators; `glm_sizes` (default: `sizes`)
    items per dose for the dose-response GLM. The bootstrap estimator is slow and only
    checked when `bootstrap` is true.

    `z` sets the acceptance bands in MCSE units. By default it is Bonferroni-corrected over
    the checks run, z = Phi^-1(1 - 0.05 / (2 K)), so that a set of perfectly calibrated
    estimators passes with probability >= 0.95. Per-check +-2 MCSE bands would fail at
    least one of K = 40 calibrated checks with probability 1 - 0.95^40 = 0.87; the
    per-check verdict is still reported as `within_2mcse`.
    """
    glm_sizes = sizes if glm_sizes is None else glm_sizes
    measured: list[Measurement] = []
    # statsmodels' Holm calls gc.collect() on every call; freezing the heap built so far
    # keeps each of the thousands of collections from rescanning it.
    gc.freeze()
    try:
        for n in sizes:
            measured += _binary_two_sample(n, replicates, seed)
            measured += _continuous_two_sample(n, replicates, seed, "welch", 0)
            if bootstrap:
                measured += _continuous_two_sample(n, replicates, seed, "bootstrap", bootstrap_resamples)
            measured += _holm_family(n, replicates, seed)
            measured += _tost_size(n, replicates, seed)
            measured += _ks_normal(n, replicates, seed)
            measured += _watermark(n, replicates, seed)
            measured += _membership(n, replicates, seed)
        for n in glm_sizes:
            measured += _dose_slope(n, replicates, seed)
    finally:
        gc.unfreeze()
    if z is None:
        z = float(stats.norm.isf(FAMILYWISE_LEVEL / (2 * len(measured))))
    return to_frame([_judge(m, z) for m in measured], CalibrationCheck)


def _judge(m: Measurement, z: float) -> CalibrationCheck:
    half_width = max(m.floor, z * m.mcse) + m.allowance
    two_mcse = max(m.floor, 2 * m.mcse) + m.allowance
    lower = 0.0 if m.one_sided else m.target - half_width
    upper = m.target + half_width
    within_2mcse = m.value <= m.target + two_mcse and (m.one_sided or m.value >= m.target - two_mcse)
    return CalibrationCheck(
        check=m.check, estimator=m.estimator, n_per_arm=m.n_per_arm, metric=m.metric,
        value=m.value, target=m.target, mcse=m.mcse, z=z, lower=lower, upper=upper,
        replicates=m.replicates, within_2mcse=bool(within_2mcse),
        passed=bool(lower <= m.value <= upper),
    )


# ---- two-sample effects -------------------------------------------------------------------

def _binary_two_sample(n: int, replicates: int, seed: int) -> list[Measurement]:
    _, _, mde = minimal_detectable_effect(n, n, "binary", ALPHA, PLANNED_POWER, baseline=BINARY_BASELINE)
    treated_rate = BINARY_BASELINE + mde
    out = []
    for scenario, rate in (("A/A", BINARY_BASELINE), ("effect at planned MDE", treated_rate)):
        rng = _rng(seed, "binary", scenario, n)
        treated = rng.random((replicates, n)) < rate
        control = rng.random((replicates, n)) < BINARY_BASELINE
        results = [compare_binary(t, c, alpha=ALPHA) for t, c in zip(treated, control)]
        out += _two_sample_checks(f"binary {scenario}", "compare_binary", n, results,
                                  rate - BINARY_BASELINE, null=rate == BINARY_BASELINE,
                                  ci_inverts_test=False)
    return out


def _continuous_two_sample(
    n: int, replicates: int, seed: int, method: str, n_resamples: int
) -> list[Measurement]:
    d, _, _ = minimal_detectable_effect(n, n, "continuous", ALPHA, PLANNED_POWER)
    estimator = f"compare_continuous[{method}]"
    scenarios = (
        # (name, treated shift in control SDs, treated SD)
        ("A/A", 0.0, 1.0),
        ("null, unequal variances", 0.0, 2.0),
        ("effect at planned MDE", d, 1.0),
    )
    out = []
    for scenario, shift, treated_sd in scenarios:
        rng = _rng(seed, "continuous", method, scenario, n)
        treated = rng.normal(shift, treated_sd, (replicates, n))
        control = rng.normal(0.0, 1.0, (replicates, n))
        results = [
            compare_continuous(t, c, alpha=ALPHA, method=method, n_resamples=n_resamples,  # type: ignore[arg-type]
                               seed=labelled_seed(seed, scenario, n, i))
            for i, (t, c) in enumerate(zip(treated, control))
        ]
        out += _two_sample_checks(f"continuous {scenario}", estimator, n, results, shift,
                                  null=shift == 0.0, ci_inverts_test=method == "welch")
    return out


def _two_sample_checks(
    check: str, estimator: str, n: int, results: Sequence[Comparison], truth: float,
    *, null: bool, ci_inverts_test: bool,
) -> list[Measurement]:
    """Rejection rate, plus CI coverage unless the CI is the inverted test under the null
    (then coverage of 0 is exactly 1 - the false-positive rate, a duplicate check)."""
    rejected = np.array([r.p < ALPHA for r in results])
    covered = np.array([r.ci_low <= truth <= r.ci_high for r in results])
    rate = (
        _measure(check, estimator, n, "false_positive_rate", rejected, ALPHA)
        if null else
        _measure(check, estimator, n, "power", rejected, PLANNED_POWER,
                 allowance=POWER_APPROXIMATION)
    )
    if null and ci_inverts_test:
        return [rate]
    coverage = _measure(check, estimator, n, "coverage", covered, 1 - ALPHA,
                        floor=COVERAGE_HALF_WIDTH)
    return [rate, coverage]


# ---- one-sample distribution test ---------------------------------------------------------

KS_SHIFT = 0.5
"""Location shift (in SDs) of the non-null KS scenario; true KS distance 2 Phi(shift / 2) - 1."""


def _ks_normal(n: int, replicates: int, seed: int) -> list[Measurement]:
    """`ks_normal` under N(0, 1) (false-positive rate) and under N(0.5, 1) (DKW CI coverage).

    The DKW band is conservative, so coverage is checked one-sided: only under-coverage fails.
    """
    rng = _rng(seed, "ks_normal", n)
    null = [ks_standard_normal(x, ALPHA) for x in rng.normal(0.0, 1.0, (replicates, n))]
    shifted = [ks_standard_normal(x, ALPHA) for x in rng.normal(KS_SHIFT, 1.0, (replicates, n))]
    true_distance = 2 * stats.norm.cdf(KS_SHIFT / 2) - 1
    rejected = np.array([r[3] < ALPHA for r in null])
    missed = np.array([not (r[1] <= true_distance <= r[2]) for r in shifted])
    return [
        _measure("KS vs N(0,1), null", "ks_normal", n, "false_positive_rate", rejected, ALPHA),
        # measured as non-coverage so the one-sided band bounds the excess over alpha
        _measure("KS vs N(0,1), shifted 0.5 SD", "ks_normal", n, "non_coverage", missed, ALPHA, one_sided=True),
    ]


def _watermark(n: int, replicates: int, seed: int) -> list[Measurement]:
    """The watermark estimators under the null x ~ N(0, 1) (false-positive rates, mean-shift
    CI coverage) and the TPR bootstrap CI's coverage under a learned watermark, x ~ N(-1.5, 1).

    The detection-share and TPR tests are exact binomial tests of a count: conservative, so
    only an excess over alpha fails.
    """
    rng = _rng(seed, "watermark", n)
    null = rng.normal(0.0, 1.0, (replicates, n))
    shifts = [mean_shift(x, ALPHA) for x in null]
    learned_mu = -1.5
    true_tpr = float(stats.norm.cdf(THRESHOLD - learned_mu))
    learned = [tpr_at_fpr(x, ALPHA, seed=i) for i, x in enumerate(rng.normal(learned_mu, 1.0, (replicates, n)))]
    return [
        _measure("watermark mean shift, null", "watermark_shift", n, "false_positive_rate",
                 np.array([r[3] < ALPHA for r in shifts]), ALPHA),
        _measure("watermark mean shift, null", "watermark_shift", n, "coverage",
                 np.array([r[1] <= 0.0 <= r[2] for r in shifts]), 1 - ALPHA),
        _measure("watermark items detected, null", "watermark_item_p", n, "false_positive_rate",
                 np.array([detection_share(x, ALPHA)[3] < ALPHA for x in null]), ALPHA, one_sided=True),
        _measure("watermark TPR at 1% FPR, null", "watermark_tpr", n, "false_positive_rate",
                 np.array([tpr_at_fpr(x, ALPHA)[3] < ALPHA for x in null]), ALPHA, one_sided=True),
        _measure("watermark TPR at 1% FPR, learned (mu = -1.5)", "watermark_tpr", n, "non_coverage",
                 np.array([not (r[1] <= true_tpr <= r[2]) for r in learned]), ALPHA, one_sided=True),
    ]


def _membership(n: int, replicates: int, seed: int) -> list[Measurement]:
    """Membership AUC (Mann-Whitney p, DeLong CI) and TPR at 1% FPR (permutation p) when
    members and non-members come from one distribution.

    A normal AUC interval runs short at small n (93.6% at 25 + 25 items), so its coverage
    band gets a 0.02 allowance; the permutation test is exact up to its resampling error.
    """
    rng = _rng(seed, "membership", n)
    members, nonmembers = rng.normal(size=(replicates, n)), rng.normal(size=(replicates, n))
    aucs = [auc_delong(m, c, ALPHA) for m, c in zip(members, nonmembers)]
    tpr_p = [stats.permutation_test((m, c), membership_tpr, permutation_type="independent", n_resamples=199,
                                    vectorized=True, rng=np.random.default_rng(i)).pvalue
             for i, (m, c) in enumerate(zip(members, nonmembers))]
    return [
        _measure("membership AUC, null", "auc", n, "false_positive_rate", np.array([r[3] < ALPHA for r in aucs]), ALPHA),
        _measure("membership AUC, null", "auc", n, "coverage", np.array([r[1] <= 0.5 <= r[2] for r in aucs]), 1 - ALPHA,
                 allowance=0.02),
        _measure("membership TPR at 1% FPR, null", "tpr_at_fpr", n, "false_positive_rate", np.array(tpr_p) < ALPHA, ALPHA,
                 one_sided=True),
    ]


# ---- multiplicity and equivalence --------------------------------------------------------

def _holm_family(n: int, replicates: int, seed: int) -> list[Measurement]:
    """FWER of a Holm-adjusted confirmatory family, all null and with 3 real effects."""
    _, _, mde = minimal_detectable_effect(n, n, "binary", ALPHA, PLANNED_POWER, baseline=BINARY_BASELINE)
    out = []
    for scenario, n_real in (("all null", 0), ("3 real effects", 3)):
        rng = _rng(seed, "holm", scenario, n)
        rates = np.full(FAMILY_SIZE, BINARY_BASELINE)
        rates[:n_real] += mde
        false_rejection = np.empty(replicates, dtype=bool)
        for i in range(replicates):
            treated = rng.random((FAMILY_SIZE, n)) < rates[:, None]
            control = rng.random((FAMILY_SIZE, n)) < BINARY_BASELINE
            family = _family_frame([compare_binary(t, c) for t, c in zip(treated, control)])
            significant = adjust(family, method="holm")["p_adj"].to_numpy() < ALPHA
            false_rejection[i] = significant[n_real:].any()
        out.append(_measure(f"Holm family of {FAMILY_SIZE}, {scenario}", "adjust[holm]", n,
                            "fwer", false_rejection, ALPHA, one_sided=True))
    return out


def _family_frame(results: Sequence[Comparison]) -> pd.DataFrame:
    return effects_frame([
        Effect.from_comparison(r, experiment=f"e{i}", outcome="y", outcome_type="binary", arm="t",
                               control_arm="c", dose=1, step=1, primary=True, family=CONFIRMATORY)
        for i, r in enumerate(results)
    ])


def _tost_size(n: int, replicates: int, seed: int) -> list[Measurement]:
    """P(declare equivalence) when the true difference sits exactly on the margin."""
    out = []
    margin_sd = 0.5
    rng = _rng(seed, "tost", "continuous", n)
    treated = rng.normal(margin_sd, 1.0, (replicates, n))
    control = rng.normal(0.0, 1.0, (replicates, n))
    claimed = np.array([tost_equivalence(t, c, "continuous", margin_sd).equivalent
                        for t, c in zip(treated, control)])
    out.append(_measure("TOST, true difference = margin", "tost_equivalence[continuous]", n,
                        "tost_size", claimed, ALPHA, one_sided=True))
    margin_rate = 0.15
    rng = _rng(seed, "tost", "binary", n)
    treated = rng.random((replicates, n)) < BINARY_BASELINE + margin_rate
    control = rng.random((replicates, n)) < BINARY_BASELINE
    claimed = np.array([tost_equivalence(t, c, "binary", margin_rate).equivalent
                        for t, c in zip(treated, control)])
    out.append(_measure("TOST, true difference = margin", "tost_equivalence[binary]", n,
                        "tost_size", claimed, ALPHA, one_sided=True))
    return out


# ---- dose-response -----------------------------------------------------------------------

def _dose_slope(n: int, replicates: int, seed: int) -> list[Measurement]:
    """Slope test of the log1p-dose GLM with items scored at several checkpoints.

    Null scenarios give items persistent heterogeneity (an item-level random intercept), so
    rows of one item are correlated across checkpoints and only cluster-robust SEs keep the
    size. Effect scenarios check CI coverage of the true slope.
    """
    doses = np.repeat(DOSES, n)
    items = doses.size
    log_dose = np.log1p(doses)
    steps = np.arange(1, N_CHECKPOINTS + 1)
    frame = pd.DataFrame({
        "dose": np.tile(doses, N_CHECKPOINTS),
        "item_index": np.tile(np.arange(items), N_CHECKPOINTS),
        "step": np.repeat(steps, items),
    })
    logit_base = math.log(BINARY_BASELINE / (1 - BINARY_BASELINE))

    def binary_null(rng: np.random.Generator) -> np.ndarray:
        item_logit = logit_base + rng.normal(0.0, 1.0, items)
        return (rng.random((N_CHECKPOINTS, items)) < expit(item_logit)).ravel()

    def binary_slope(rng: np.random.Generator) -> np.ndarray:
        logit = logit_base + BINARY_SLOPE * log_dose
        return (rng.random((N_CHECKPOINTS, items)) < expit(logit)).ravel()

    def continuous_null(rng: np.random.Generator) -> np.ndarray:
        return (rng.normal(0.0, 1.0, items) + rng.normal(0.0, 1.0, (N_CHECKPOINTS, items))).ravel()

    def continuous_slope(rng: np.random.Generator) -> np.ndarray:
        item_mean = CONTINUOUS_SLOPE * log_dose + rng.normal(0.0, 1.0, items)
        return (item_mean + rng.normal(0.0, 1.0, (N_CHECKPOINTS, items))).ravel()

    scenarios: tuple[tuple[str, str, Callable[[np.random.Generator], np.ndarray], float], ...] = (
        ("binary", "null, correlated checkpoints", binary_null, 0.0),
        ("binary", "known slope", binary_slope, BINARY_SLOPE),
        ("continuous", "null, correlated checkpoints", continuous_null, 0.0),
        ("continuous", "known slope", continuous_slope, CONTINUOUS_SLOPE),
    )
    out = []
    for outcome_type, scenario, simulate, slope in scenarios:
        rng = _rng(seed, "dose", outcome_type, scenario, n)
        rejected = np.empty(replicates, dtype=bool)
        covered = np.empty(replicates, dtype=bool)
        for i in range(replicates):
            fit = fit_dose_response(frame.assign(value=simulate(rng).astype(float)), outcome_type,
                                    steps=steps, models=(SLOPE_MODEL,))
            row = fit[fit["term"] == SLOPE_TERM].iloc[0]
            rejected[i] = row["p"] < ALPHA
            covered[i] = row["ci_low"] <= slope <= row["ci_high"]
        check = f"dose slope, {outcome_type}, {scenario}"
        estimator = "fit_dose_response[log1p_dose, cluster]"
        # Wald CI and test are dual: under the null, coverage would repeat the FPR.
        if slope == 0.0:
            out.append(_measure(check, estimator, n, "false_positive_rate", rejected, ALPHA))
        else:
            out.append(_measure(check, estimator, n, "coverage", covered, 1 - ALPHA,
                                floor=COVERAGE_HALF_WIDTH))
    return out


# ---- bounds ------------------------------------------------------------------------------

def _measure(
    check: str, estimator: str, n: int, metric: str, hits: np.ndarray, target: float,
    **bounds: float | bool,
) -> Measurement:
    return Measurement(check, estimator, n, metric, float(hits.mean()), target, hits.size,
                       **bounds)  # type: ignore[arg-type]


def _rng(seed: int, *labels: object) -> np.random.Generator:
    # One stream per check, so adding or reordering checks leaves the others unchanged.
    return np.random.default_rng(labelled_seed(seed, *labels))
