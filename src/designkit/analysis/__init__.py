"""Statistics of the run: treated-vs-control effects, dose-response, equivalence, power.

Imports numpy, pandas, scipy and statsmodels only (no torch; matplotlib only to plot).
From a notebook:

    import designkit.analysis as dka
    results = dka.load("runs/demo")          # checks the run against its plan, estimates everything
    results.effects                          # tidy frame; results.conf_int(0.01), results.summary()
    results.dose_response.predict("bench", "correct", [0, 4, 16]); results.plot_forest()

The chain underneath:

    frame = long_outcome_frame(items, scores, specs)
    effects = adjust(effects_table(frame, specs, AnalysisOptions(alpha=0.05)), method="holm")

Every outcome goes through its estimator: a registered class (`estimator.Estimator`);
the built-ins are `newcombe`, `welch`, `bootstrap` (`two_sample`), `cluster_robust`, `ks_normal`,
`auc`, `tpr_at_fpr`, `exposure` (`membership`) and `per_stratum`.
"""

from designkit.analysis.dose_response import (
    DoseResponse,
    DoseTerm,
    dose_response_table,
    fit_dose_response,
    fit_dose_response_models,
)
from designkit.analysis.effects import (
    Comparison,
    Effect,
    cohen_d,
    compare_binary,
    compare_continuous,
    effects_frame,
)
from designkit.analysis.equivalence import Equivalence, tost_equivalence
from designkit.analysis.estimator import (
    ESTIMATORS,
    EstimationTask,
    Estimator,
    ReportSection,
    check_estimators,
    default_estimator,
    effects_table,
    estimator_class,
    estimator_for,
    register_estimator,
)
from designkit.analysis.cluster_robust import ClusterRobust
from designkit.analysis.forgetting import ForgettingCurve
from designkit.analysis.ks_normal import KsNormal
from designkit.analysis.membership import Auc, Exposure, TprAtFpr
from designkit.analysis.watermark_stats import WatermarkCalibration, WatermarkItemP, WatermarkShift, WatermarkTpr
from designkit.analysis.options import AnalysisOptions
from designkit.plan_types import ArmSpec, ExperimentSpec, OutcomeSpec
from designkit.analysis.multiple_testing import adjust, assign_families
from designkit.analysis.outcome_frame import long_outcome_frame
from designkit.analysis.over_training import (
    effects_over_training,
    window_contrast,
    window_contrasts_table,
    window_pairs,
)
from designkit.analysis.power_check import AchievedMde, achieved_mde_table
from designkit.analysis.results import RunResults, load
from designkit.analysis.tidy import to_frame
from designkit.analysis.per_stratum import PerStratum
from designkit.analysis.two_sample import Bootstrap, Newcombe, TwoSampleEstimator, Welch
from designkit.planning.power import minimal_detectable_effect, proportion_difference_from_h

__all__ = [
    "ESTIMATORS",
    "AchievedMde",
    "AnalysisOptions",
    "ArmSpec",
    "Bootstrap",
    "ClusterRobust",
    "Comparison",
    "DoseResponse",
    "DoseTerm",
    "Effect",
    "Equivalence",
    "EstimationTask",
    "Estimator",
    "ExperimentSpec",
    "ForgettingCurve",
    "KsNormal",
    "WatermarkCalibration",
    "WatermarkItemP",
    "WatermarkShift",
    "WatermarkTpr",
    "Auc",
    "TprAtFpr",
    "Exposure",
    "PerStratum",
    "Newcombe",
    "OutcomeSpec",
    "ReportSection",
    "TwoSampleEstimator",
    "RunResults",
    "Welch",
    "achieved_mde_table",
    "adjust",
    "assign_families",
    "check_estimators",
    "cohen_d",
    "compare_binary",
    "compare_continuous",
    "default_estimator",
    "dose_response_table",
    "effects_frame",
    "effects_over_training",
    "effects_table",
    "estimator_class",
    "estimator_for",
    "fit_dose_response",
    "fit_dose_response_models",
    "load",
    "long_outcome_frame",
    "minimal_detectable_effect",
    "proportion_difference_from_h",
    "register_estimator",
    "to_frame",
    "tost_equivalence",
    "window_contrast",
    "window_contrasts_table",
    "window_pairs",
]
