"""`analyze_run` refuses runs it cannot report on truthfully, and never loses a directory.

Every refusal is an `InputError` (one line, exit code 2 in the CLI) raised before anything
is written: the report dir does not appear and no temporary sibling is left behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from designkit.analysis.report import analyze_run
from designkit.cli import main
from designkit.errors import InputError

from .test_report_fabricated_run import make_run, report_plan_dir


@pytest.fixture(scope="module")
def plan_dir(tiny_corpus, tmp_path_factory):
    return report_plan_dir(tiny_corpus, tmp_path_factory.getbasetemp() / "report-plan")


@pytest.fixture
def no_figures(monkeypatch):
    """Figures cost seconds and are not what these tests are about."""
    monkeypatch.setattr("designkit.analysis.report.render_figures", lambda results: [])


def _refused(run_dir: Path, out: Path, **kwargs) -> InputError:
    with pytest.raises(InputError) as caught:
        analyze_run(run_dir, out, **kwargs)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)
    return caught.value


def _nothing_written(out: Path) -> bool:
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return not out.exists() and not leftovers


def test_refuses_a_run_trained_from_another_plan(plan_dir, tmp_path):
    run = make_run(tmp_path / "run", plan_dir, recorded_hash="0" * 64)
    error = _refused(run, tmp_path / "report")
    assert error.field == "plan_hash" and error.file.endswith("run.json") and "000000000000" in str(error)
    assert _nothing_written(tmp_path / "report")


def test_refuses_a_plan_changed_after_training(plan_dir, tmp_path):
    plan_copy = tmp_path / "plan"
    shutil.copytree(plan_dir, plan_copy)
    run = make_run(tmp_path / "run", plan_copy)
    items = plan_copy / "items.parquet"
    items.write_bytes(items.read_bytes() + b"\0")  # Plan.open's hash check catches an edited file
    error = _refused(run, tmp_path / "report")
    assert "items.parquet" in str(error)
    assert _nothing_written(tmp_path / "report")


def test_refuses_a_run_with_a_missing_checkpoint(plan_dir, tmp_path):
    run = make_run(tmp_path / "run", plan_dir, skip_checkpoints=(20,))
    error = _refused(run, tmp_path / "report")
    assert error.file.endswith("checkpoints") and "missing steps [20]" in str(error)
    assert _nothing_written(tmp_path / "report")


def test_refuses_checkpoints_without_scores_and_says_how_to_score(plan_dir, tmp_path):
    run = make_run(tmp_path / "run", plan_dir, skip_scores=(40,))
    error = _refused(run, tmp_path / "report")
    assert "[40]" in str(error) and f"designkit score {run}" in str(error)
    assert _nothing_written(tmp_path / "report")


def test_refuses_scores_of_another_plans_items(plan_dir, tmp_path):
    run = make_run(tmp_path / "run", plan_dir)
    file = run / "scores" / "step-00000020.parquet"
    original = pq.read_table(file)
    frame = original.to_pandas()
    frame.loc[frame["item_index"] == 0, "item_id"] = "bench/not-this-plan"
    pq.write_table(pa.Table.from_pandas(frame, schema=original.schema, preserve_index=False), file)
    error = _refused(run, tmp_path / "report")
    assert error.field == "item_id" and "bench/not-this-plan" in str(error)


def test_refuses_a_non_empty_out_without_force_and_keeps_it(plan_dir, tmp_path):
    run = make_run(tmp_path / "run", plan_dir)
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    error = _refused(run, out)
    assert "--force" in str(error)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_force_replaces_a_report_but_never_another_directory(plan_dir, tmp_path, no_figures):
    run = make_run(tmp_path / "run", plan_dir)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    error = _refused(run, other, force=True)
    assert "results.json" in str(error) and (other / "notes.txt").is_file()

    out = tmp_path / "report"
    analyze_run(run, out)
    (out / "stale.png").write_bytes(b"old")
    analyze_run(run, out, force=True)
    assert not (out / "stale.png").exists() and (out / "results.json").is_file()
    _refused(run, run, force=True)  # the run dir itself is never a report dir
    _refused(run, tmp_path, force=True)


def test_an_empty_out_dir_is_filled(plan_dir, tmp_path, no_figures):
    run = make_run(tmp_path / "run", plan_dir)
    (tmp_path / "report").mkdir()
    report = analyze_run(run, tmp_path / "report")
    assert (report.path / "report.html").is_file()


def test_refuses_an_applied_log_that_differs_from_the_plan(plan_dir, tmp_path):
    run = make_run(tmp_path / "run", plan_dir, applied_drop=2)
    error = _refused(run, tmp_path / "report")
    assert error.file.endswith("applied.parquet")
    assert "2 planned but not applied" in str(error) and "global_seq=" in str(error)
    assert _nothing_written(tmp_path / "report")


def test_an_applied_log_disagreement_can_be_reported_for_debugging(plan_dir, tmp_path, no_figures):
    run = make_run(tmp_path / "run", plan_dir, applied_drop=1)
    report = analyze_run(run, tmp_path / "report", allow_applied_mismatch=True)
    applied = report.document["identity"]["applied_log"]
    assert applied["agrees"] is False and applied["missing"] == 1 and applied["applied"] == applied["planned"] - 1
    assert report.red_flags[0].startswith("applied log differs from the plan")
    page = (report.path / "report.html").read_text(encoding="utf-8")
    assert 'class="flag"' in page and "applied log differs" in page
    assert "RED FLAG: applied log differs" in report.console_summary()


def test_cli_analyze_refusal_exits_2_with_one_line(plan_dir, tmp_path, capsys):
    run = make_run(tmp_path / "run", plan_dir, skip_scores=(0,))
    code = main(["analyze", str(run), "--out", str(tmp_path / "report"), "--no-score"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "designkit score" in err
    assert _nothing_written(tmp_path / "report")
