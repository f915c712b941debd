"""Reduced calibration study: every estimator keeps its error rates (200 replicates)."""

from __future__ import annotations

import pytest

from designkit.analysis.calibration_sim import Measurement, _judge, run_calibration


@pytest.fixture(scope="module")
def calibration():
    # Bands are Bonferroni-corrected z MCSE at 200 replicates (about +-0.05 on a rate of 0.05).
    return run_calibration(replicates=200, seed=0, glm_sizes=(30,))


def test_every_calibration_check_passes(calibration):
    failed = calibration[~calibration["passed"]]
    assert failed.empty, failed[["check", "n_per_arm", "metric", "value", "lower", "upper"]].to_string()


def test_calibration_covers_every_estimator(calibration):
    assert set(calibration["estimator"]) >= {
        "compare_binary", "compare_continuous[welch]", "adjust[holm]",
        "tost_equivalence[continuous]", "tost_equivalence[binary]",
        "fit_dose_response[log1p_dose, cluster]", "ks_normal",
        "watermark_shift", "watermark_item_p", "watermark_tpr"}
    assert set(calibration["metric"]) == {"false_positive_rate", "coverage", "non_coverage", "power", "fwer", "tost_size"}


@pytest.mark.parametrize(("value", "one_sided", "passes"), [
    (0.05, False, True), (0.10, False, False), (0.01, False, False), (0.01, True, True), (0.10, True, False),
])
def test_bands_reject_miscalibration(value, one_sided, passes):
    m = Measurement("c", "e", 100, "false_positive_rate", value, 0.05, 500, one_sided=one_sided)
    assert _judge(m, z=3.0).passed is passes
