"""Statistics of the run: treated-vs-control effects, dose-response, equivalence, power.

Imports numpy, pandas, scipy and statsmodels only (no torch, no matplotlib). Typical chain:

    frame = long_outcome_frame(items, scores, specs)
    effects = adjust(effects_table(frame, specs), method="holm")
"""

from designkit.analysis.dose_response import (
    DoseTerm,
    dose_response_table,
    fit_dose_response,
    predicted_curve,
)
from designkit.analysis.effects import (
    Comparison,
    Effect,
    cohen_d,
    compare,
    compare_binary,
    compare_continuous,
    effects_frame,
    effects_table,
)
from designkit.analysis.equivalence import Equivalence, tost_equivalence
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
from designkit.analysis.tidy import to_frame
from designkit.planning.power import minimal_detectable_effect, proportion_difference_from_h

__all__ = [
    "AchievedMde",
    "ArmSpec",
    "Comparison",
    "DoseTerm",
    "Effect",
    "Equivalence",
    "ExperimentSpec",
    "OutcomeSpec",
    "achieved_mde_table",
    "adjust",
    "assign_families",
    "cohen_d",
    "compare",
    "compare_binary",
    "compare_continuous",
    "dose_response_table",
    "effects_frame",
    "effects_over_training",
    "effects_table",
    "fit_dose_response",
    "long_outcome_frame",
    "minimal_detectable_effect",
    "predicted_curve",
    "proportion_difference_from_h",
    "to_frame",
    "tost_equivalence",
    "window_contrast",
    "window_contrasts_table",
    "window_pairs",
]
