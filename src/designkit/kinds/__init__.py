"""Experiment kinds, one module each. See ``base.ExperimentKind`` for the contract.

``KINDS`` is the kinds' registry (``designkit.registry``): the built-ins below, kinds that
installed packages declare under the ``designkit.kinds`` entry-point group, and any
``module:attr`` import path a design names.
"""

from designkit.kinds.base import ExperimentKind, Item, OutcomeSpec, Payload, PlanContext, ProbeInstance, ProbeSpec
from designkit.kinds.canary import Canary
from designkit.kinds.contamination import Contamination
from designkit.kinds.forgetting import Forgetting
from designkit.kinds.knowledge import Knowledge
from designkit.kinds.reasoning import Reasoning
from designkit.kinds.texts import Texts
from designkit.kinds.verbatim import Verbatim
from designkit.kinds.watermark import Watermark
from designkit.registry import Registry

KINDS: Registry[type[ExperimentKind]] = Registry("designkit.kinds", "experiment kind", base=ExperimentKind)
for _kind in (Contamination, Canary, Texts, Verbatim, Watermark, Knowledge, Forgetting, Reasoning):
    KINDS.register(_kind)

__all__ = ["KINDS", "ExperimentKind", "Item", "OutcomeSpec", "Payload", "PlanContext", "ProbeInstance", "ProbeSpec"]
