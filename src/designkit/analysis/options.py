"""The analysis options in force for a run: the design's `analysis:` block, resolved.

`designkit.design.AnalysisSpec` documents every option; this is the analysis's view of
the same values, read back from `plan.json` (so an old plan without a newer option gets
the documented default). Every summary string is built from these values, never from a
literal 0.05.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ADJUSTMENT_NAMES = {
    "holm": "Holm-adjusted",
    "fdr_bh": "BH-adjusted (FDR)",
    "bonferroni": "Bonferroni-adjusted",
    "hommel": "Hommel-adjusted",
    "fdr_by": "BY-adjusted (FDR)",
}


@dataclass(frozen=True)
class AnalysisOptions:
    """How the run is analyzed (see `designkit.design.AnalysisSpec` for each option)."""

    alpha: float = 0.05
    """Two-sided level of every test; CIs have confidence 1 - alpha."""
    power: float = 0.8
    """Power of the planned and achieved minimal detectable effects."""
    multiplicity: str = "holm"
    """`multipletests` method applied within each family: `holm` or `fdr_bh`."""
    continuous_method: str = "welch"
    """Default estimator of a continuous outcome: `welch` or `bootstrap`."""
    equivalence_margin: float | None = None
    """TOST margin in effect-size units (Cohen's d / h) for placebo experiments."""
    seed: int = 0
    """Root of the bootstrap/permutation seeds (each row's seed also depends on its labels)."""
    n_resamples: int = 9999
    """Bootstrap and permutation resamples."""

    @property
    def adjustment_name(self) -> str:
        return ADJUSTMENT_NAMES.get(self.multiplicity, f"{self.multiplicity}-adjusted")

    @property
    def ci_label(self) -> str:
        return f"{100 * (1 - self.alpha):g}% CI"

    @classmethod
    def from_plan(cls, meta: Mapping[str, Any]) -> AnalysisOptions:
        design = meta.get("design") or {}
        analysis = design.get("analysis") or {}
        # plans written before the options moved into `analysis:` kept power in `power:`
        legacy_power = (design.get("power") or {}).get("power", cls.power)
        margin = analysis.get("equivalence_margin")
        return cls(
            alpha=float(analysis.get("alpha", cls.alpha)),
            power=float(analysis.get("power", legacy_power)),
            multiplicity=str(analysis.get("multiplicity", cls.multiplicity)),
            continuous_method=str(analysis.get("continuous_method", cls.continuous_method)),
            equivalence_margin=None if margin is None else float(margin),
        )
