"""Experiment kinds, one module each. See ``base.ExperimentKind`` for the contract."""

from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, PlanContext, ProbeSpec
from designkit.kinds.canary import Canary
from designkit.kinds.contamination import Contamination
from designkit.kinds.texts import Texts

KINDS: dict[str, type[ExperimentKind]] = {kind.name: kind for kind in (Contamination, Canary, Texts)}

__all__ = ["KINDS", "ExperimentKind", "Item", "OutcomeSpec", "PlanContext", "ProbeSpec"]
