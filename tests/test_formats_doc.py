"""docs/formats.md names every plan.json key, every scores column and every outcome field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from designkit.plan_types import OutcomeSpec
from designkit.probes import BUILTIN_PROBES, PROBES, scores_schema

DOC = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")


def _section(start: str, end: str) -> str:
    return DOC[DOC.index(start) : DOC.index(end)]


PLAN_JSON = _section("### `plan.json`", "### `items.parquet`")


def _undocumented(keys, text: str) -> list[str]:
    return sorted(k for k in keys if f"`{k}`" not in text)


@pytest.fixture(scope="module")
def plan_meta(tiny_plan) -> dict:
    return json.loads((tiny_plan / "plan.json").read_text(encoding="utf-8"))


def test_every_plan_json_key_is_documented(plan_meta):
    meta = plan_meta
    nested = {
        "": meta,
        "geometry": meta["geometry"],
        "corpus": meta["corpus"],
        "model": meta["model"],
        "training": meta["training"],
        "budget": meta["budget"],
        "budget.rows": meta["budget"]["rows"][0],
        "leakage": meta["leakage"],
        "leakage.per_arm": meta["leakage"]["per_arm"][0],
        "experiments": meta["experiments"][0],
        "experiments.arms": next(iter(meta["experiments"][0]["arms"].values())),
        "power": meta["power"][0],
        "assignment": meta["assignment"][0],
    }
    missing = {where: _undocumented(d, PLAN_JSON) for where, d in nested.items()}
    assert not any(missing.values()), f"plan.json keys missing from docs/formats.md: {missing}"


def test_every_scores_column_of_every_built_in_probe_type_is_documented():
    columns = scores_schema(PROBES[name] for name in BUILTIN_PROBES).names
    run_and_probes = _section("### Probes", "## REPORT dir")
    assert _undocumented(columns, run_and_probes) == []


def test_every_outcome_field_is_documented():
    outcomes = _section("### Outcomes", "## RUN dir")
    fields = [f.name for f in dataclasses.fields(OutcomeSpec)]
    assert sorted(f for f in fields if f'"{f}"' not in outcomes) == []
    # and the fields a plan writes are exactly the dataclass's
    written = OutcomeSpec(name="x", type="binary", estimator="welch", aggregate="cluster_robust").to_json()
    assert set(written) == set(fields)


def test_every_plan_file_column_is_documented():
    from designkit.planning.planfile import INSTANCES_SCHEMA, ITEMS_SCHEMA, PAYLOADS_SCHEMA, PLACEMENTS_SCHEMA, RESERVED_SCHEMA

    plan_dir = _section("## PLAN dir", "### Probes")
    for schema in (ITEMS_SCHEMA, PAYLOADS_SCHEMA, INSTANCES_SCHEMA, PLACEMENTS_SCHEMA, RESERVED_SCHEMA):
        assert _undocumented(schema.names, plan_dir) == []
