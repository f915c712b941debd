"""Run-time dose control: controllers decide, at each interval boundary, what fills the plan's slots.

``ControlledRun`` holds the plan's controllers (``designkit.controllers``) with their slots.
At the boundary of control interval ``k`` (after ``k·every`` steps) rank 0 hands the
controller the in-loop probe values of its treated items, turns the decision into fills
(``assign_fills``), writes it to ``controller.csv`` and broadcasts it; every rank installs
the fills in its stream. The prefetcher asks ``ready`` before it builds a batch, so no batch
is ever built past an interval that is not decided yet. ``state_dict`` (the controllers'
state, the decided interval and its fills) is stored in every checkpoint, so a resume
after a crash decides, fills and trains exactly as the uninterrupted run.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from designkit import atomic_files
from designkit.controllers import CONTROLLER_COLUMNS, Controller, ControllerSpec, assign_fills, interval_slots, make_controller
from designkit.runfile import CONTROLLER_FILE
from engine.stream import INSERT, InjectingStream, PlanEdits


@dataclass
class _Controlled:
    experiment: str
    spec: ControllerSpec
    controller: Controller
    slots: dict[int, pd.DataFrame]
    decided: int = -1
    """The last interval decided (-1: none yet)."""
    cursor: dict[int, int] | None = None
    fills: pd.DataFrame | None = None
    """The fills of interval ``decided``."""


class ControlledRun:
    """Every controller of a plan, the stream it fills and the gate the prefetcher waits at."""

    def __init__(self, controlled: list[_Controlled], stream: InjectingStream, item_ids: np.ndarray,
                 payload_lengths: np.ndarray, run_dir: Path, *, write: bool,
                 item_payloads: tuple[np.ndarray, np.ndarray] | None = None):  # fmt: skip
        self.controlled = controlled
        self.stream = stream
        self.item_ids = item_ids
        self.payload_lengths = payload_lengths
        # per item: its first payload row and its payload count (``Plan.item_payloads``); a fill
        # inserts the item's next payload in cyclic order (the paper's paraphrases)
        n_items = len(item_ids)
        self.first_payload, self.n_payloads = item_payloads or (np.arange(n_items, dtype=np.int64), np.ones(n_items, np.int64))
        self.file = Path(run_dir) / CONTROLLER_FILE
        self.write = write
        self._gate = threading.Condition()

    @classmethod
    def from_plan(cls, plan, stream: InjectingStream, run_dir: Path, *, write: bool) -> ControlledRun | None:
        items = plan.items()
        reserved = plan.reserved()
        controlled = []
        for e, spec in enumerate(plan.experiment_specs):
            if not spec.controller:
                continue
            cspec = ControllerSpec.from_json(spec.controller)
            treated = items[(items["experiment"] == spec.name) & items["inserted"]]["item_index"].astype(int).tolist()
            controller = make_controller(cspec, treated, plan.steps, file=plan.path / "plan.json", at=f"experiments[{e}].controller")
            controlled.append(_Controlled(spec.name, cspec, controller, interval_slots(reserved, spec.name), cursor={}))
        if not controlled:
            return None
        _, payload_index = plan.payload
        return cls(controlled, stream, items["item_id"].to_numpy(object), np.diff(np.asarray(payload_index, np.int64)), run_dir,
                   write=write, item_payloads=plan.item_payloads)

    # the prefetcher's gate
    def allowed_end(self) -> int:
        """First step whose interval some controller has not decided."""
        return min((c.decided + 1) * c.spec.every for c in self.controlled)

    def ready(self, step: int, stop: threading.Event) -> bool:
        """Block until ``step``'s interval is decided by every controller; False if ``stop`` is set first."""
        with self._gate:
            while step >= self.allowed_end():
                if stop.is_set():
                    return False
                self._gate.wait(timeout=0.1)
        return True

    # decisions
    def boundary(self, fabric, step: int, probe_rows: pd.DataFrame | None, total_steps: int) -> None:
        """Decide every interval that starts at ``step`` (rank 0), broadcast, install the fills."""
        due = [c for c in self.controlled if step % c.spec.every == 0 and step // c.spec.every > c.decided and step < total_steps]
        if not due:
            return
        decisions = None
        if fabric.global_rank == 0:
            decisions = [self._decide(c, step, probe_rows) for c in due]
        decisions = fabric.broadcast(decisions)
        for c, (state, requested, log_rows) in zip(due, decisions):
            if fabric.global_rank != 0:
                c.controller.load_state_dict(state)
            payloads = {int(i): int(self.n_payloads[int(i)]) for i in requested}
            c.fills, _ = assign_fills(c.slots.get(step // c.spec.every, _no_slots()), requested, payloads, c.cursor)
            if self.write:
                self._log(log_rows, [int(n) for n in _filled(log_rows, c.fills)])
        self._install({id(c): step // c.spec.every for c in due})

    def _decide(self, c: _Controlled, step: int, probe_rows: pd.DataFrame | None) -> tuple[dict, dict[int, int], list[dict]]:
        values: dict[int, float] = {}
        if probe_rows is not None:
            mine = probe_rows[(probe_rows["experiment"] == c.experiment) & (probe_rows["probe"] == c.spec.probe)]
            # an item's probe instances (several prompts of one fact) are averaged: the item is what the controller doses
            per_item = mine.assign(value=mine[c.spec.column].astype(float)).groupby("item_index", sort=True)["value"].mean()
            values = {int(i): float(v) for i, v in per_item.items()}
        requested = c.controller.decide(step, values)
        target = c.controller.target(step)
        rows = [
            {"interval": step // c.spec.every, "step": step, "experiment": c.experiment, "item_index": i,
             "item_id": str(self.item_ids[i]), "probe_value": values.get(i, float("nan")), "target": target, "requested": n}
            for i, n in sorted(requested.items())
        ]  # fmt: skip
        return c.controller.state_dict(), requested, rows

    def _log(self, rows: list[dict], filled: list[int]) -> None:
        new = not self.file.is_file()
        with self.file.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(CONTROLLER_COLUMNS), lineterminator="\n")
            if new:
                writer.writeheader()
            for row, n in zip(rows, filled):
                writer.writerow({**row, "filled": n})
            handle.flush()

    def _install(self, decided: dict[int, int] | None = None) -> None:
        """The stream's fills: every controller's current interval, as insert edits sorted by sequence.

        The fills and the newly ``decided`` intervals change together under the gate's lock:
        the prefetcher must never see an interval decided before its fills are in the stream.
        """
        parts = [c.fills for c in self.controlled if c.fills is not None and len(c.fills)]
        frame = pd.concat(parts, ignore_index=True).sort_values(["global_seq", "offset"], kind="stable") if parts else None
        with self._gate:
            self.stream.fills = PlanEdits.empty() if frame is None else self._edits(frame)
            for c in self.controlled:
                c.decided = (decided or {}).get(id(c), c.decided)
            self._gate.notify_all()

    def _edits(self, frame: pd.DataFrame) -> PlanEdits:
        item = frame["item_index"].to_numpy(np.int32)
        payload = (self.first_payload[item] + frame["payload"].to_numpy(np.int64)).astype(np.int32)
        n = len(frame)
        return PlanEdits(
            global_seq=frame["global_seq"].to_numpy(np.int64),
            offset=frame["offset"].to_numpy(np.int32),
            n_tokens=(self.payload_lengths[payload] + 2).astype(np.int32),  # EOS + payload + EOS
            item_index=item,
            payload_index=payload,
            edit=np.full(n, INSERT, np.int8),
            reserve_seq=np.full(n, -1, np.int64),
            noise_seed=np.full(n, -1, np.int64),
            noise_std=np.zeros(n, np.float32),
            item_ids=self.item_ids,
        )

    # checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Plain data (``torch.load(weights_only=True)`` reads it back)."""
        out = {}
        for c in self.controlled:
            fills = c.fills if c.fills is not None else _no_fills()
            out[c.experiment] = {
                "controller": c.controller.state_dict(),
                "decided": c.decided,
                "cursor": [[int(k), int(v)] for k, v in sorted((c.cursor or {}).items())],
                "fills": {name: fills[name].astype(int).tolist() for name in ("global_seq", "offset", "item_index", "payload")},
            }
        return out

    def load_state_dict(self, state: dict[str, Any] | None, resume_step: int) -> None:
        """Restore from a checkpoint of ``resume_step``; ``controller.csv`` keeps only the decisions made up to it."""
        for c in self.controlled:
            entry = (state or {}).get(c.experiment)
            if entry is None:
                continue
            c.controller.load_state_dict(entry["controller"])
            c.decided = int(entry["decided"])
            c.cursor = {int(k): int(v) for k, v in entry["cursor"]}
            c.fills = pd.DataFrame({name: np.asarray(values, dtype=np.int64) for name, values in entry["fills"].items()})
        if self.write and self.file.is_file():
            # keep the logged lines byte for byte: a resumed run's log equals an uninterrupted one's
            header, *lines = self.file.read_text(encoding="utf-8").splitlines(keepends=True)
            step_column = CONTROLLER_COLUMNS.index("step")
            kept = [line for line in lines if int(next(csv.reader([line]))[step_column]) <= resume_step]
            with atomic_files.atomic_path(self.file) as tmp:
                tmp.write_text(header + "".join(kept), encoding="utf-8")
        self._install()


def _no_slots() -> pd.DataFrame:
    return pd.DataFrame({"global_seq": np.zeros(0, np.int64), "offset": np.zeros(0, np.int32)})


def _no_fills() -> pd.DataFrame:
    return pd.DataFrame({name: np.zeros(0, np.int64) for name in ("global_seq", "offset", "item_index", "payload")})


def _filled(rows: list[dict], fills: pd.DataFrame) -> list[int]:
    counts = fills["item_index"].value_counts()
    return [int(counts.get(row["item_index"], 0)) for row in rows]
