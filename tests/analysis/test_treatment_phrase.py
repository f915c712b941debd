"""The report names each kind's treatment as it is: insertions are inserted, removals removed."""

from __future__ import annotations

from designkit.analysis.results import treatment


def test_the_report_names_the_treatment_of_each_edit():
    assert treatment("canary").format(item="canary", times="4 times") == "Inserting each canary 4 times"
    assert treatment("verbatim").startswith("Removing every training sequence")
    assert treatment("plugins.edit_kinds:WindowRemoval").startswith("Replacing every sequence")  # the edit's default
    assert treatment("plugins.edit_kinds:WindowNoise").startswith("Adding embedding noise")
    assert treatment("no_such_package.kinds:Missing").startswith("Inserting")  # a kind this machine lacks
