"""Run-time dose controllers: how many payloads of each item fill the next control interval.

Some experiments decide their dose during training (ARCHITECTURE.md, "Run-time decisions").
The plan reserves *slots* for them (``reserved.parquet`` rows with ``interval >= 0``): token
spans of run sequences that training leaves as corpus text unless a controller fills them.
Every ``every`` steps the engine evaluates the experiment's in-loop probe on the model being
trained, hands the values to the controller's ``decide`` and fills the next interval's slots
with the payloads it asks for. Rank 0 decides and broadcasts; the decision, the probe values
and the fills go to ``controller.csv``; the controller's ``state_dict`` goes into every
checkpoint, so a resume decides exactly as the uninterrupted run did.

A controller is one registered class (``CONTROLLERS``; built-in below, or an import path
``module:Class`` / a ``designkit.controllers`` entry point), torch-free, with a small API:

- ``decide(step, probe_values) -> {item_index: payloads}`` for the next interval;
- ``state_dict()`` / ``load_state_dict(state)`` (plain ints, floats and lists: checkpoints
  are read with ``torch.load(weights_only=True)``).

``assign_fills`` turns decisions into slot fills. It is a pure function of the slots and
the decision history, so ``designkit.provenance`` re-derives every fill from
``controller.csv`` and the plan, and accepts the applied log only if it holds the plan's
edits plus exactly those fills.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from designkit.errors import InputError
from designkit.registry import Registry

CONTROLLER_COLUMNS = ("interval", "step", "experiment", "item_index", "item_id", "probe_value", "target", "requested", "filled")
"""``controller.csv``: one row per controlled item per decision. ``interval`` is the control
interval the decision fills (steps ``[interval·every, (interval+1)·every)``), ``step`` the
step after which it was made, ``requested`` the payloads the controller asked for and
``filled`` those the interval's slots held (``assign_fills``)."""
SLOT_USE = "controller slot"
"""``reserved.parquet`` ``use`` of a controller's slot."""


@dataclass(frozen=True)
class ControllerSpec:
    """``plan.json`` ``experiments[i].controller``: which rule, how often, on which probe."""

    type: str
    """A registered controller (``dose_doubling``) or an import path ``module:Class``."""
    every: int
    """Steps per control interval; the in-loop probe is evaluated at every boundary."""
    probe: str
    """The experiment's probe whose values the controller reads."""
    column: str
    """The scores column of that probe (e.g. ``logprob``)."""
    slots_per_interval: int
    """Slots the plan reserves in every interval (the controller's most payloads per interval)."""
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "every": self.every, "probe": self.probe, "column": self.column,
                "slots_per_interval": self.slots_per_interval, "params": dict(self.params)}  # fmt: skip

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ControllerSpec:
        return cls(type=str(entry["type"]), every=int(entry["every"]), probe=str(entry["probe"]), column=str(entry["column"]),
                   slots_per_interval=int(entry["slots_per_interval"]), params=dict(entry.get("params") or {}))  # fmt: skip


class Controller(ABC):
    """Decides, at each interval boundary, how many payloads of each controlled item to insert."""

    name: ClassVar[str]

    def __init__(self, spec: ControllerSpec, item_index: Sequence[int], total_steps: int):
        self.spec = spec
        self.item_index = [int(i) for i in item_index]
        self.total_steps = int(total_steps)

    @abstractmethod
    def decide(self, step: int, probe_values: Mapping[int, float]) -> dict[int, int]:
        """Payloads of each item (``item_index`` → count) for the interval starting at ``step``."""

    def target(self, step: int) -> float:
        """The value the probe is steered toward at ``step`` (NaN if the rule has none)."""
        return math.nan

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


CONTROLLERS: Registry[type[Controller]] = Registry("designkit.controllers", "controller", base=Controller)


@CONTROLLERS.register
class DoseDoubling(Controller):
    """Bordt & Pawelczyk (2025), Algorithm 1 (dynamic knowledge acquisition).

    The probe value is P(target | prompt) (``exp`` of a summed ``logprob``). Its target grows
    linearly over training, ``final_target · s / S``. Below the target an item's paraphrases
    per interval double, above it they halve; the change is limited to ``max_change``
    payloads per interval and the count clamped to ``[min_dose, max_dose]`` ([1, 8192] in
    the paper).
    """

    name = "dose_doubling"
    PARAMS = {"final_target": 0.08, "initial_dose": 1, "min_dose": 1, "max_dose": 8192, "max_change": 8192, "probability": True}

    def __init__(self, spec: ControllerSpec, item_index: Sequence[int], total_steps: int):
        super().__init__(spec, item_index, total_steps)
        unknown = sorted(set(spec.params) - set(self.PARAMS))
        if unknown:
            raise InputError(None, "controller.params", f"expected keys among {sorted(self.PARAMS)}, got {unknown[0]!r}")
        p = {**self.PARAMS, **spec.params}
        self.final_target = float(p["final_target"])
        self.min_dose, self.max_dose = int(p["min_dose"]), int(p["max_dose"])
        self.max_change = int(p["max_change"])
        self.probability = bool(p["probability"])
        if not (1 <= self.min_dose <= self.max_dose) or self.max_change < 1:
            raise InputError(None, "controller.params", "expected 1 <= min_dose <= max_dose and max_change >= 1")
        self.dose = {i: int(np.clip(int(p["initial_dose"]), self.min_dose, self.max_dose)) for i in self.item_index}
        self.decisions = 0

    def target(self, step: int) -> float:
        return self.final_target * step / max(1, self.total_steps)

    def decide(self, step: int, probe_values: Mapping[int, float]) -> dict[int, int]:
        if self.decisions:  # the first interval gets the initial dose: there is no effect to steer yet
            target = self.target(step)
            for i in self.item_index:
                value = probe_values.get(i, math.nan)
                value = math.exp(value) if self.probability else value
                current = self.dose[i]
                proposed = current // 2 if value >= target else current * 2
                proposed = int(np.clip(proposed, current - self.max_change, current + self.max_change))
                self.dose[i] = int(np.clip(proposed, self.min_dose, self.max_dose))
        self.decisions += 1
        return dict(self.dose)

    def state_dict(self) -> dict[str, Any]:
        return {"item_index": list(self.dose), "dose": list(self.dose.values()), "decisions": self.decisions}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dose = {int(i): int(d) for i, d in zip(state["item_index"], state["dose"])}
        self.decisions = int(state["decisions"])


def make_controller(spec: ControllerSpec, item_index: Sequence[int], total_steps: int, *, file=None, at: str | None = None) -> Controller:
    cls = CONTROLLERS.get(spec.type, file=file, field=f"{at}.type" if at else "type")
    return cls(spec, item_index, total_steps)


def assign_fills(slots: pd.DataFrame, requested: Mapping[int, int], payloads: Mapping[int, int],
                 cursor: dict[int, int]) -> tuple[pd.DataFrame, dict[int, int]]:  # fmt: skip
    """Fill one interval's ``slots`` (rows sorted by ``global_seq, offset``) with the payloads asked for.

    Items take slots in turns (round robin in ``item_index`` order), so when the slots are
    fewer than asked for, every item is cut back alike. Each fill is the item's next payload
    in cyclic order: ``cursor[item]`` counts the payloads it has had so far and ``payloads[item]``
    how many it has. Returns the fills (``global_seq``, ``offset``, ``item_index``,
    ``payload``) and the number filled per item; ``cursor`` is advanced in place.
    """
    order = sorted(i for i, n in requested.items() if n > 0)
    left = {i: int(requested[i]) for i in order}
    picks: list[int] = []
    while len(picks) < len(slots) and any(left.values()):
        for i in order:
            if left[i] and len(picks) < len(slots):
                picks.append(i)
                left[i] -= 1
    filled = {i: int(requested.get(i, 0)) - left.get(i, 0) for i in requested}
    payload = []
    for i in picks:
        payload.append(cursor.get(i, 0) % max(1, payloads.get(i, 1)))
        cursor[i] = cursor.get(i, 0) + 1
    chosen = slots.iloc[: len(picks)]
    fills = pd.DataFrame({
        "global_seq": chosen["global_seq"].to_numpy(np.int64),
        "offset": chosen["offset"].to_numpy(np.int32),
        "item_index": np.asarray(picks, dtype=np.int32),
        "payload": np.asarray(payload, dtype=np.int32),
    })  # fmt: skip
    return fills, filled


def interval_slots(reserved: pd.DataFrame, experiment: str) -> dict[int, pd.DataFrame]:
    """``{interval: slots}`` of an experiment, each sorted by (global_seq, offset)."""
    if "interval" not in reserved.columns:
        return {}
    mine = reserved[(reserved["experiment"] == experiment) & (reserved["interval"] >= 0)]
    mine = mine.sort_values(["interval", "global_seq", "offset"], kind="stable")
    return {int(k): frame.reset_index(drop=True) for k, frame in mine.groupby("interval", sort=True)}


def fills_from_log(reserved: pd.DataFrame, log: pd.DataFrame, payloads: Mapping[int, int]) -> pd.DataFrame:
    """Every fill a run made, re-derived from ``controller.csv`` (``log``) and the plan's slots.

    The same ``assign_fills`` the engine runs, replayed decision by decision: the applied-log
    check compares the run's fills with these.
    """
    parts = []
    for experiment, rows in log.groupby("experiment", sort=False):
        slots = interval_slots(reserved, str(experiment))
        cursor: dict[int, int] = {}
        for interval, decision in rows.sort_values(["interval", "item_index"]).groupby("interval", sort=True):
            requested = dict(zip(decision["item_index"].astype(int), decision["requested"].astype(int)))
            empty = reserved.iloc[:0]
            fills, _ = assign_fills(slots.get(int(interval), empty), requested, payloads, cursor)
            parts.append(fills)
    if not parts:
        return pd.DataFrame({"global_seq": np.zeros(0, np.int64), "offset": np.zeros(0, np.int32),
                             "item_index": np.zeros(0, np.int32), "payload": np.zeros(0, np.int32)})  # fmt: skip
    return pd.concat(parts, ignore_index=True)


__all__ = [
    "CONTROLLERS", "CONTROLLER_COLUMNS", "SLOT_USE", "Controller", "ControllerSpec", "DoseDoubling", "assign_fills",
    "fills_from_log", "interval_slots", "make_controller",
]
