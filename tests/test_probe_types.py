"""Probe types as a torch-free registry: docs generated from it, the scores schema, plan-time checks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from designkit.errors import InputError
from designkit.kinds.canary import Canary
from designkit.plan_types import ProbeSpec
from designkit.planning import make_plan
from designkit.probes import BUILTIN_PROBES, PROBES, Column, LogProb, TextLoss, docs_tables, make_probe, scores_schema
from designkit.runfile import SCORE_KEY_COLUMNS

FORMATS = Path(__file__).resolve().parents[1] / "docs" / "formats.md"


def test_formats_doc_lists_every_builtin_probe_types_fields_and_columns():
    text = FORMATS.read_text(encoding="utf-8")
    documented = text.split("<!-- probes:begin -->\n", 1)[1].split("<!-- probes:end -->", 1)[0]
    assert documented == docs_tables(), "paste designkit.probes.docs_tables() into docs/formats.md"
    for name in BUILTIN_PROBES:
        for column in PROBES.get(name).columns:
            assert f"| `{name}` | `{column.name}` | {column.type} |" in documented


def test_scores_schema_is_the_keys_then_the_union_of_the_probe_types_columns():
    schema = scores_schema([TextLoss, LogProb, TextLoss])
    assert schema.names == [*SCORE_KEY_COLUMNS, *TextLoss.column_names(), *LogProb.column_names()]
    assert schema.field("n_tokens").type == pa.int32() and schema.field("loss").type == pa.float64()


def test_two_probe_types_may_share_a_column_only_with_one_type():
    class Clash(LogProb):
        name = "clash"
        columns = (Column("loss", pa.int32(), "not the loss text_loss writes"),)

    with pytest.raises(ValueError, match="'loss'"):
        scores_schema([TextLoss, Clash])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ProbeSpec("p", "no_such_probe", {}), r"x\.type: expected one of the probe types .*got 'no_such_probe'"),
        (ProbeSpec("p", "nowhere.at_all:Probe", {}), r"x\.type: expected an importable module 'nowhere.at_all'"),
        (ProbeSpec("p", "greedy", {"prompt": "prompt_tokens", "reference": "target_tokens"}), r"x\.max_new_tokens: expected a positive integer"),
        (ProbeSpec("p", "text_loss", {"tokens": "probe_tokens", "min_k": 1.5}), r"x\.min_k: expected a fraction in \(0, 1\]"),
    ],
)
def test_bad_probe_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(InputError, match=message) as info:
        make_probe(spec, file="plan.json", at="x")
    assert "\n" not in str(info.value)


def test_the_planner_refuses_a_probe_naming_no_items_column(tmp_path, design_file, monkeypatch):
    def probes(self, items):
        return [ProbeSpec("loss", "text_loss", {"tokens": "no_such_column"})]

    monkeypatch.setattr(Canary, "probes", probes)
    with pytest.raises(InputError, match=r"experiments\[1\]\.probes\[0\]\.tokens: expected a column of items.parquet, got 'no_such_column'"):
        make_plan(design_file, tmp_path / "plan", show_progress=False)
    assert not (tmp_path / "plan").exists()
