"""Probe types: how a checkpoint scores an item. See ``base.Probe`` for the contract.

``PROBES`` is the probe types' registry (``designkit.registry``): the six built-ins below,
probe types that installed packages declare under the ``designkit.probes`` entry-point
group, and any ``module:attr`` import path a plan names as a probe ``type``. Declaring a
probe type needs no torch; the engine (``engine.probes``) runs the model computations.

A new probe type is one ``Probe`` subclass in one file, registered here (built-in) or
through an entry point or import path (a user's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from designkit.errors import InputError
from designkit.plan_types import ExperimentSpec, ProbeSpec
from designkit.probes.base import (
    Column,
    GreedyRequest,
    ItemField,
    Probe,
    ProbeContext,
    Request,
    SpanRequest,
    is_missing,
)
from designkit.probes.answer import Answer
from designkit.probes.greedy import Greedy
from designkit.probes.logprob import LogProb
from designkit.probes.multiple_choice import MultipleChoice
from designkit.probes.sequence_loss import SequenceLoss
from designkit.probes.text_loss import TextLoss
from designkit.probes.watermark import WatermarkGradient
from designkit.registry import Registry
from designkit.runfile import SCORE_KEY_COLUMNS, SCORE_KEY_SCHEMA

PROBES: Registry[type[Probe]] = Registry("designkit.probes", "probe type", base=Probe)
for _probe in (LogProb, MultipleChoice, Greedy, TextLoss, SequenceLoss, WatermarkGradient, Answer):
    PROBES.register(_probe)


def make_probe(spec: ProbeSpec, *, file: str | Path | None = None, at: str | None = None) -> Probe:
    """The configured probe of a spec; InputError (naming ``file`` and ``at``) for an unknown
    type or a bad option."""
    cls = PROBES.get(spec.type, file=file, field=f"{at}.type" if at else "type")
    return cls(spec, file=file, at=at)


def scores_schema(probe_types: Iterable[type[Probe]]) -> pa.Schema:
    """The key columns, then the columns of each probe type in order (each column once).

    Two probe types may share a column only with the same Arrow type (ValueError otherwise).
    """
    fields = list(SCORE_KEY_SCHEMA)
    types: dict[str, pa.DataType] = {f.name: f.type for f in fields}
    owner: dict[str, str] = {name: "the key columns" for name in types}
    for cls in probe_types:
        for column in cls.columns:
            if column.name in types:
                if types[column.name] != column.type:
                    raise ValueError(
                        f"probe type {cls.name!r} declares column {column.name!r} as {column.type}, "
                        f"{owner[column.name]} as {types[column.name]}"
                    )
                continue
            types[column.name] = column.type
            owner[column.name] = f"probe type {cls.name!r}"
            fields.append(pa.field(column.name, column.type))
    return pa.schema(fields)


def check_probe_specs(experiments: Sequence[ExperimentSpec], item_columns: Sequence[str], *, file: str | Path | None = None) -> pa.Schema:
    """Every probe of every experiment resolved and configured, its item fields naming
    ``item_columns``, and the scores schema of their union; InputError on the first bad one.

    The planner calls this before writing a plan, the engine again before scoring one.
    """
    types: list[type[Probe]] = []
    for e, experiment in enumerate(experiments):
        for p, spec in enumerate(experiment.probes):
            probe = make_probe(spec, file=file, at=f"experiments[{e}].probes[{p}]")
            probe.item_columns(item_columns)
            if type(probe) not in types:
                types.append(type(probe))
    try:
        return scores_schema(types)
    except ValueError as exc:
        raise InputError(file, "experiments", f"expected probe types whose score columns agree ({exc})") from None


@dataclass(frozen=True)
class PlanProbes:
    """Every (item, probe) pair of a plan, resolved once and reused for each checkpoint."""

    keys: pd.DataFrame
    """``item_index, item_id, instance, experiment, probe`` per pair, in plan order."""
    jobs: list[tuple[Probe, Any]]
    """The configured probe and its input, per pair."""
    schema: pa.Schema
    """The plan's scores schema: the key columns and the union of its probe types' columns."""


def plan_probes(
    experiments: Sequence[ExperimentSpec],
    items: pd.DataFrame,
    context: ProbeContext,
    *,
    file: str | Path | None = None,
) -> PlanProbes:
    """Resolve each experiment's probe specs against ``items`` (the boundary for probe specs).

    ``items`` holds one row per probe instance (``Plan.probe_rows()``: each instance next to
    its item's columns, ``instance`` numbering an item's instances); a frame without an
    ``instance`` column is one instance per item. Each probe scores every instance. An
    instance whose required field is null gets no pair: the analysis treats absent scores as
    missing, while a NaN row would enter its means.
    """
    schema = check_probe_specs(experiments, list(items.columns), file=file)
    keys: list[tuple[int, str, int, str, str]] = []
    jobs: list[tuple[Probe, Any]] = []
    for e, experiment in enumerate(experiments):
        rows = items[items["experiment"] == experiment.name]
        for p, spec in enumerate(experiment.probes):
            probe = make_probe(spec, file=file, at=f"experiments[{e}].probes[{p}]")
            columns = probe.item_columns(list(items.columns))
            required = [f.key for f in probe.item_fields if f.required]
            for row in rows.itertuples(index=False):
                record = row._asdict()
                values = {key: record[column] for key, column in columns.items()}
                if any(is_missing(values[key]) for key in required):
                    continue
                probe_input = probe.read(values, record, context)
                if probe_input is None:
                    continue
                keys.append((int(record["item_index"]), str(record["item_id"]), int(record.get("instance", 0)), experiment.name, spec.name))
                jobs.append((probe, probe_input))
    frame = pd.DataFrame(keys, columns=list(SCORE_KEY_COLUMNS[:5]))
    frame["item_index"] = frame["item_index"].astype(np.int32)
    frame["instance"] = frame["instance"].astype(np.int32)
    return PlanProbes(keys=frame, jobs=jobs, schema=schema)


def docs_tables(probe_types: Iterable[type[Probe]] | None = None) -> str:
    """The Markdown of docs/formats.md's probe tables, from the registry (built-ins by default)."""
    probe_types = list(probe_types) if probe_types is not None else [PROBES.get(n) for n in BUILTIN_PROBES]
    lines = ["| `type` | fields | computes |", "|--------|--------|----------|"]
    for cls in probe_types:
        fields = [f"`{f.key}`: {f.doc}{'' if f.required else ' (optional)'}" for f in cls.item_fields]
        fields += [f"`{key}`: {doc}" for key, doc in cls.options]
        lines.append(f"| `{cls.name}` | {'; '.join(fields)} | {cls.description} |")
    lines += ["", "| `type` | scores column | Arrow type | meaning |", "|--------|---------------|------------|---------|"]
    for cls in probe_types:
        for column in cls.columns:
            lines.append(f"| `{cls.name}` | `{column.name}` | {column.type} | {column.doc} |")
    return "\n".join(lines) + "\n"


BUILTIN_PROBES = ("logprob", "multiple_choice", "greedy", "text_loss", "sequence_loss", "watermark_gradient", "answer")

__all__ = [
    "BUILTIN_PROBES", "PROBES", "Answer", "Column", "Greedy", "GreedyRequest", "ItemField", "LogProb", "MultipleChoice", "PlanProbes",
    "Probe", "ProbeContext", "Request", "SequenceLoss", "SpanRequest", "TextLoss", "WatermarkGradient", "check_probe_specs", "docs_tables", "make_probe",
    "plan_probes", "scores_schema",
]
