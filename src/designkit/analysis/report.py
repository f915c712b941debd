"""`designkit analyze`: the REPORT dir of a scored RUN dir, rendered from its `RunResults`.

`analyze_run` refuses an `out` it would lose something by replacing, loads the results
(`results.load`, which refuses a run that does not match its plan) and writes
results.json, effects.parquet, report.md, report.html and the figures into a temporary
directory that is renamed into place. Nothing is written on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from designkit import artefacts, atomic_files
from designkit.analysis.figures import render_figures
from designkit.analysis.render import render, results_document
from designkit.analysis.results import RunResults, load
from designkit.errors import InputError

RESULTS_FILE = "results.json"


@dataclass(frozen=True, eq=False)
class Report:
    """A written report: where it is, and the results it renders."""

    path: Path
    """The report directory."""
    results: RunResults = field(repr=False)
    document: dict[str, Any] = field(repr=False)
    """The content of results.json."""

    @property
    def effects(self) -> pd.DataFrame:
        return self.results.effects

    @property
    def red_flags(self) -> list[str]:
        return self.results.red_flags

    def console_summary(self) -> str:
        """`RunResults.summary()` and where the report is."""
        return f"{self.results.summary()}\n\nreport: {(self.path / 'report.html').resolve()}"


def analyze_run(run_dir: str | Path, out: str | Path, *, force: bool = False,
                allow_applied_mismatch: bool = False, baseline_run: str | Path | None = None) -> Report:
    """Analyze the scored run at `run_dir` into the report directory `out`.

    `force` replaces an existing report dir (one holding results.json); `baseline_run` is a
    reference run with the same seed and no experiments, whose loss the overview shows. Bad input raises
    `InputError` before anything is written (see `results.load` for the run's refusals).
    """
    out, run_dir = Path(out), Path(run_dir)
    replace = check_report_dir(out, force, run_dir)
    results = load(run_dir, allow_applied_mismatch=allow_applied_mismatch, baseline_run=baseline_run)
    return write_report(results, out, replace=replace)


def write_report(results: RunResults, out: Path, *, replace: bool = False) -> Report:
    """Render `results` into `out` atomically."""
    figures = render_figures(results)
    document = results_document(results, figures)
    with atomic_files.atomic_directory(out, replace=replace) as tmp:
        atomic_files.write_json(tmp / RESULTS_FILE, document)
        table = pa.Table.from_pandas(results.effects, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, tmp / "effects.parquet", compression="zstd")
        atomic_files.write_text(tmp / "report.md", render("report.md", results, figures))
        atomic_files.write_text(tmp / "report.html", render("report.html", results, figures))
        for fig in figures:
            atomic_files.write_bytes(tmp / fig.name, fig.png)
    return Report(path=out, results=results, document=document)


def check_report_dir(out: Path, force: bool, run_dir: Path) -> bool:
    """Whether `out` will be replaced; InputError where writing it would lose something."""
    atomic_files.check_output_dir(out)  # a file, or a place that cannot be written: before scoring
    resolved = out.resolve()
    if resolved == run_dir.resolve() or resolved in run_dir.resolve().parents:
        raise InputError(out, None, "expected a report directory outside the run directory it would replace")
    return artefacts.check_output(out, "report", force=force)


__all__ = ["Report", "analyze_run", "check_report_dir", "write_report"]
