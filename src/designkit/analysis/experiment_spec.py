"""What the statistics need to know about an experiment: arms, control arm, outcomes.

These mirror the `experiments` entries of `plan.json` (docs/formats.md) and are built from
them with `ExperimentSpec.from_plan`. Everything downstream assumes a spec is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

OutcomeType = Literal["binary", "continuous"]
OUTCOME_TYPES: tuple[str, ...] = ("binary", "continuous")


@dataclass(frozen=True)
class OutcomeSpec:
    """One outcome measured on every item of an experiment."""

    name: str
    """Outcome name; the `outcome` column of the long outcome frame holds it."""
    type: OutcomeType
    """`binary` (values 0/1) or `continuous`."""
    primary: bool = False
    """The one confirmatory outcome of the experiment."""
    probe: str = ""
    """Probe whose scores hold the outcome (scores' `probe` column)."""
    column: str = ""
    """Column of that probe's scores holding the outcome."""
    expected_sign: int = 1
    """Direction a real effect moves the outcome (+1 or -1); tests stay two-sided."""
    baseline: float | None = None
    """Expected control-arm mean where known (binary: a rate), used for power in natural units."""
    minus_probe: str | None = None
    """If set, the outcome is `column` of `probe` minus the same column of this probe, per item."""

    def __post_init__(self) -> None:
        if self.type not in OUTCOME_TYPES:
            raise ValueError(f"outcome {self.name!r}: expected type in {OUTCOME_TYPES}, got {self.type!r}")
        if self.expected_sign not in (1, -1):
            raise ValueError(f"outcome {self.name!r}: expected expected_sign +1 or -1, got {self.expected_sign!r}")


@dataclass(frozen=True)
class ArmSpec:
    """One arm of an experiment."""

    name: str
    dose: int
    """Planned repetitions per item (0 for the control arm, nominal for a placebo)."""
    inserted: bool
    """Whether the arm's items are actually placed in training."""
    window: tuple[float, float] | None = None
    """Fraction of the run where insertions may land; None means the whole run."""


@dataclass(frozen=True)
class ExperimentSpec:
    """An experiment as the analysis sees it."""

    name: str
    control_arm: str | None
    """Arm every treated arm is compared against; None if the kind has no control arm."""
    outcomes: tuple[OutcomeSpec, ...]
    arms: tuple[ArmSpec, ...] = ()
    placebo: bool = False

    def __post_init__(self) -> None:
        n_primary = sum(o.primary for o in self.outcomes)
        if self.outcomes and n_primary != 1:
            raise ValueError(f"experiment {self.name!r}: expected exactly one primary outcome, got {n_primary}")

    @property
    def primary_outcome(self) -> OutcomeSpec | None:
        return next((o for o in self.outcomes if o.primary), None)

    def outcome(self, name: str) -> OutcomeSpec:
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(f"experiment {self.name!r} has no outcome {name!r}")

    @classmethod
    def from_plan(cls, entry: Mapping[str, Any]) -> ExperimentSpec:
        """Build a spec from one `plan.json` `experiments` entry."""
        outcomes = tuple(
            OutcomeSpec(
                name=str(o["name"]),
                type=o["type"],
                primary=bool(o.get("primary", False)),
                probe=str(o.get("probe", "")),
                column=str(o.get("column", "")),
                expected_sign=int(o.get("expected_sign", 1)),
                baseline=None if o.get("baseline") is None else float(o["baseline"]),
                minus_probe=o.get("minus_probe"),
            )
            for o in entry.get("outcomes", [])
        )
        arms = tuple(
            ArmSpec(
                name=str(name),
                dose=int(arm.get("dose", 0)),
                inserted=bool(arm.get("inserted", False)),
                window=_parse_window(arm.get("window")),
            )
            for name, arm in (entry.get("arms") or {}).items()
        )
        return cls(
            name=str(entry["name"]),
            control_arm=entry.get("control_arm"),
            outcomes=outcomes,
            arms=arms,
            placebo=bool(entry.get("placebo", False)),
        )


def _parse_window(window: Any) -> tuple[float, float] | None:
    # The plan may spell a window as [start, end] or {"start": .., "end": ..}.
    if window is None:
        return None
    if isinstance(window, Mapping):
        return float(window["start"]), float(window["end"])
    if isinstance(window, Sequence) and not isinstance(window, str) and len(window) == 2:
        return float(window[0]), float(window[1])
    raise ValueError(f"expected an arm window [start, end] or None, got {window!r}")
