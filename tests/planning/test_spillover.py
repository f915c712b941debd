"""Spillover: the planner reports n-gram overlap between an experiment's treated and control
items, and between held-out probe instances and training payloads; ``leakage: error`` refuses it."""

from __future__ import annotations

import json

import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.errors import InputError
from designkit.planning import make_plan

KINDS = "plugins.multi_payload_kinds"


def design_of(corpus, kind: str, *, on_overlap: str = "warn", generate=None, **params) -> dict:
    design = tiny_design(corpus, **{"run.steps": 12, "leakage": {"on_overlap": on_overlap, "scan_corpus": False}})
    design["experiments"] = [{
        "name": "notes", "kind": f"{KINDS}:{kind}", "items": {"generate": generate or {"n": 10}},
        "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}, "params": params,
    }]
    return design


def spillover_of(tmp_path, design) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    result = make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    (row,) = result.meta["spillover"]["experiments"]
    return row


def test_templated_texts_are_flagged_as_spillover_between_treated_and_controls(tmp_path, tiny_corpus, capsys):
    row = spillover_of(tmp_path, design_of(tiny_corpus, "TemplatedNotes"))
    assert row["experiment"] == "notes" and row["controls"] == 5
    assert row["controls_exposed"] == 5  # every control shares the long template with treated notes
    treated, control = row["example_pair"]
    items = {r["item_id"]: r for r in _items(tmp_path)}
    assert items[treated]["arm"] == "x2" and items[control]["arm"] == "control"
    # the plan summary names the experiment
    assert main(["inspect", str(tmp_path / "plan")]) == 0
    assert "warning: spillover (13-grams), experiment notes: 5 of 5 control items" in capsys.readouterr().out


def test_distinct_texts_show_no_spillover(tmp_path, tiny_corpus):
    row = spillover_of(tmp_path, design_of(tiny_corpus, "TemplatedNotes", distinct=True))
    assert (row["controls"], row["controls_exposed"], row["example_pair"]) == (5, 0, None)


def test_spillover_under_leakage_error_is_refused_in_one_line_naming_the_experiment_and_a_pair(tmp_path, tiny_corpus):
    with pytest.raises(InputError) as caught:
        make_plan(write_design(tmp_path / "d.yaml", design_of(tiny_corpus, "TemplatedNotes", on_overlap="error")),
                  tmp_path / "plan", show_progress=False)
    message = str(caught.value)
    assert "\n" not in message and "leakage" in message and "experiment notes" in message
    assert "(e.g. notes/note" in message and " and notes/note" in message
    assert not (tmp_path / "plan").exists()  # nothing written on bad input


def test_held_out_probe_instances_that_copy_a_training_payload_are_flagged(tmp_path, tiny_corpus):
    generate = {"n": 10, "paraphrases": 2}
    clean = spillover_of(tmp_path / "clean", design_of(tiny_corpus, "HeldOutProblems", generate=generate))
    assert (clean["instances_checked"], clean["instances_overlapping"], clean["controls_exposed"]) == (20, 0, 0)
    leaky = spillover_of(tmp_path / "leaky", design_of(tiny_corpus, "HeldOutProblems", generate=generate, leak=True))
    assert leaky["instances_overlapping"] == 5  # the first test problem of each treated template
    assert leaky["controls_exposed"] == 0  # a control's copied payload is never inserted
    assert "instance 0 and a payload of" in leaky["example_instance"]
    with pytest.raises(InputError, match=r"held-out probe instances share a 13-gram with treated payloads"):
        make_plan(write_design(tmp_path / "e.yaml", design_of(tiny_corpus, "HeldOutProblems", on_overlap="error",
                                                              generate=generate, leak=True)),
                  tmp_path / "refused", show_progress=False)


def _items(tmp_path):
    import pandas as pd

    return pd.read_parquet(tmp_path / "plan" / "items.parquet").to_dict("records")


def test_kinds_whose_probes_read_the_training_text_are_not_checked_for_held_out_overlap(tmp_path, tiny_corpus):
    row = spillover_of(tmp_path, design_of(tiny_corpus, "KeyedFacts", generate={"n": 10, "paraphrases": 2}))
    assert row["instances_checked"] is None and row["instances_overlapping"] is None
    assert json.loads((tmp_path / "plan" / "plan.json").read_text())["spillover"]["ngram"] == 13
