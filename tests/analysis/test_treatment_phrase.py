"""The report names each kind's treatment as it is: insertions are inserted, removals removed."""

from __future__ import annotations

from designkit.analysis.results import treatment


def test_the_report_names_the_treatment_of_each_edit():
    assert treatment("canary").format(item="canary", times="4 times") == "Inserting each canary 4 times"
    assert treatment("verbatim").startswith("Removing every training sequence")
    assert treatment("plugins.edit_kinds:WindowRemoval").startswith("Replacing every sequence")  # the edit's default
    assert treatment("plugins.edit_kinds:WindowNoise").startswith("Adding embedding noise")
    assert treatment("no_such_package.kinds:Missing").startswith("Inserting")  # a kind this machine lacks


def test_a_kind_that_chooses_its_edit_from_params_is_named_by_its_instance():
    assert treatment("texts", {"replace": True}).format(item="text").startswith("Replacing every sequence of each text's training windows")
    assert treatment("texts", {}).format(item="text", times="10 times") == "Inserting each text 10 times"
    assert treatment("texts", {"no_such_param": 1}).startswith("Inserting")  # unreadable params: the class's phrase
