"""Bad payload (items) files: refused by ``designkit plan`` with one line naming the items file and the key."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .harness import edit_design, refused, write_yaml

GOOD = {"query": "Question: What is the capital of Zorbia?\nAnswer:", "choices": ["Vel", "Trask", "Om"], "gold": 1}


def _records(n: int = 6, **change) -> list[dict]:
    return [{**GOOD, "id": f"q{i}", **change} for i in range(n)]


def _lines(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _one_bad(bad: dict | list | str, at: int = 3) -> bytes:
    records = _records()
    records[at] = bad
    return _lines(records)


# id: (items file name, file bytes or a table, kind, params, file the message names, key)
CASES = {
    "jsonl_not_json": ("items.jsonl", _lines(_records(2)) + b"{query: nope\n", "contamination", {}, "items.jsonl:3", None),
    "jsonl_array_line": ("items.jsonl", _one_bad(["query", "choices"]), "contamination", {}, "items.jsonl:4", None),
    "jsonl_string_line": ("items.jsonl", _one_bad("a question"), "contamination", {}, "items.jsonl:4", None),
    "jsonl_non_utf8": ("items.jsonl", _lines(_records(2)) + b'{"text": "caf\xe9 \xff"}\n', "contamination", {}, "items.jsonl", "line 3"),
    "jsonl_empty": ("items.jsonl", b"", "contamination", {}, "items.jsonl", None),
    "jsonl_blank_lines_only": ("items.jsonl", b"\n\n  \n", "contamination", {}, "items.jsonl", None),
    "record_without_query_or_text": ("items.jsonl", _one_bad({"question": "x"}), "contamination", {}, "items.jsonl:4", None),
    "query_empty": ("items.jsonl", _one_bad({**GOOD, "query": "  "}), "contamination", {}, "items.jsonl:4", "query"),
    "query_a_number": ("items.jsonl", _one_bad({**GOOD, "query": 7}), "contamination", {}, "items.jsonl:4", "query"),
    "choices_not_a_list": ("items.jsonl", _one_bad({**GOOD, "choices": "Vel, Trask"}), "contamination", {}, "items.jsonl:4", "choices"),
    "choices_one_only": ("items.jsonl", _one_bad({**GOOD, "choices": ["Vel"], "gold": 0}), "contamination", {}, "items.jsonl:4", "choices"),
    "choices_not_strings": ("items.jsonl", _one_bad({**GOOD, "choices": [1, 2]}), "contamination", {}, "items.jsonl:4", "choices"),
    "gold_out_of_range": ("items.jsonl", _one_bad({**GOOD, "gold": 3}), "contamination", {}, "items.jsonl:4", "gold"),
    "gold_negative": ("items.jsonl", _one_bad({**GOOD, "gold": -1}), "contamination", {}, "items.jsonl:4", "gold"),
    "gold_a_bool": ("items.jsonl", _one_bad({**GOOD, "gold": True}), "contamination", {}, "items.jsonl:4", "gold"),
    "gold_beyond_int64": ("items.jsonl", _one_bad({**GOOD, "gold": 10**30}), "contamination", {}, "items.jsonl:4", "gold"),
    "gold_missing": ("items.jsonl", _one_bad({"query": GOOD["query"], "choices": GOOD["choices"]}), "contamination", {}, "items.jsonl:4", "gold"),
    "text_without_answer_marker": ("items.jsonl", _one_bad({"text": "Just a sentence."}), "contamination", {}, "items.jsonl:4", "text"),
    "duplicate_ids": ("items.jsonl", _lines([{**GOOD, "id": "same"}] * 4), "contamination", {}, "items.jsonl", "id"),
    "positions_not_a_list": ("items.jsonl", _one_bad({**GOOD, "positions": "early"}), "contamination", {}, "items.jsonl:4", "positions"),
    "positions_not_integers": ("items.jsonl", _one_bad({**GOOD, "positions": [1.5, 2]}), "contamination", {}, "items.jsonl:4", "positions"),
    "texts_field_missing": ("texts.jsonl", _lines([{"text": f"A text about {i} things."} for i in range(5)] + [{"body": "no text"}]), "texts", {}, "texts.jsonl:6", "text"),
    "texts_field_not_a_string": ("texts.jsonl", _lines([{"text": ["a", "list"]}] * 6), "texts", {}, "texts.jsonl:1", "text"),
    "texts_params_key_absent": ("texts.jsonl", _lines([{"text": f"A text {i}."} for i in range(6)]), "texts", {"key": "body"}, "texts.jsonl:1", "body"),
    "parquet_garbage_bytes": ("items.parquet", b"PAR1 this is not parquet at all PAR1", "contamination", {}, "items.parquet", None),
    "parquet_truncated": ("items.parquet", "truncated", "contamination", {}, "items.parquet", None),
    "parquet_empty_table": ("items.parquet", pa.table({"query": pa.array([], pa.string())}), "contamination", {}, "items.parquet", None),
    "parquet_without_text_column": ("texts.parquet", pa.table({"body": ["one text", "another text", "a third"]}), "texts", {}, "texts.parquet:1", "text"),
    "parquet_gold_out_of_range": ("items.parquet", pa.Table.from_pylist(_records(4, gold=9)), "contamination", {}, "items.parquet:1", "gold"),
    "fewer_items_than_arms": ("items.jsonl", _lines(_records(1)), "contamination", {}, "design.yaml", "experiments[0].items"),
}


def _write_items(path, data) -> None:
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif data == "truncated":
        pq.write_table(pa.Table.from_pylist(_records(6)), path)
        path.write_bytes(path.read_bytes()[:-40])
    else:
        pq.write_table(data, path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_items_file_is_refused_with_one_line(case, tmp_path, valid_design, capsys):
    name, data, kind, params, file, key = CASES[case]
    _write_items(tmp_path / name, data)

    def use_items(design: dict) -> None:
        design["experiments"][0].update(name="items", kind=kind, items=name, params=params)
        design["experiments"][0].pop("stratify_by", None)

    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, use_items))
    refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file=file, key=key)
