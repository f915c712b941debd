"""`designkit analyze`: check a scored RUN dir against its plan and write the REPORT dir.

The chain is plain: `analyze_run` opens the run and its plan and refuses anything that
would make the report wrong or destroy something (`_check_*`), `compute_tables` runs every
estimator once, and the renderers write results.json, effects.parquet, report.md,
report.html and the figures into a temporary directory that is renamed into place.

Refusals are `InputError`s (one line, exit code 2) raised before anything is written:

- a non-empty `out` without `force`, or with `force` an `out` that is not a report dir;
- a run whose recorded plan hash differs from its plan's (or whose plan files changed);
- a planned checkpoint step without a complete checkpoint, or without scores;
- scores whose items are not this plan's items;
- an applied log (`applied.parquet`) that differs from the plan's placements. The engine
  already stops a run whose log disagrees, so a disagreement here means an engine bug or
  a hand-edited run: the treatment the items received is then unknown and no effect can
  be attributed to the plan's arms. `allow_applied_mismatch=True` writes the report
  anyway, for debugging, with the disagreement as its first red flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import designkit
from designkit import atomic_files
from designkit.analysis.estimator import check_estimators
from designkit.plan_types import ExperimentSpec
from designkit.analysis.figures import render_figures
from designkit.analysis.options import AnalysisOptions
from designkit.analysis.report_render import (
    confirmatory_rows,
    html_report,
    markdown_report,
    results_document,
)
from designkit.analysis.report_tables import AppliedCheck, ReportTables, check_applied, compute_tables
from designkit.analysis.summary_text import experiment_paragraphs
from designkit.console_table import format_table
from designkit.errors import InputError
from designkit.planning.planfile import Plan
from designkit.runfile import CHECKPOINT_FILES, RunDir

RESULTS_FILE = "results.json"


@dataclass(frozen=True, eq=False)
class Report:
    """A written report: where it is, and the tidy results it renders."""

    path: Path
    """The report directory."""
    effects: pd.DataFrame
    """Every effect (the rows of effects.parquet)."""
    results: dict[str, Any] = field(repr=False)
    """The content of results.json."""
    tables: ReportTables = field(repr=False)

    @property
    def red_flags(self) -> list[str]:
        return list(self.results["red_flags"])

    def console_summary(self) -> str:
        """The confirmatory effects as an aligned table, red flags, and where the report is."""
        ident = self.results["identity"]
        n_experiments = len(self.results["experiments"])
        head = (f"{ident['plan_name']}: {n_experiments} experiment(s), checkpoints "
                f"{', '.join(map(str, self.tables.checkpoint_steps))}; {self.tables.applied.describe()}")
        rows = confirmatory_rows(self.tables)
        columns = list(rows[0]) if rows else ["experiment", "arm", "dose", "outcome", "estimate", "CI", "p_adj", "verdict"]
        lines = [head, "", format_table(rows, columns)]
        lines += [f"RED FLAG: {flag}" for flag in self.red_flags]
        lines += ["", f"report: {(self.path / 'report.html').resolve()}"]
        return "\n".join(lines)


def analyze_run(run_dir: str | Path, out: str | Path, *, force: bool = False,
                allow_applied_mismatch: bool = False) -> Report:
    """Analyze the scored run at `run_dir` into the report directory `out`.

    `force` replaces an existing report dir (one holding results.json). Bad input raises
    `InputError` before anything is written; see the module docstring for the refusals.
    """
    out = Path(out)
    run_dir = Path(run_dir)
    replace = check_report_dir(out, force, run_dir)
    run = RunDir.open(run_dir)
    plan = run.plan()
    check_estimators(plan.experiment_specs, AnalysisOptions.from_plan(plan.meta), plan.path / "plan.json")
    steps = [int(s) for s in plan.meta["training"]["checkpoint_steps"]]
    _check_checkpoints(run, steps)
    score_steps = _check_scored(run, steps)
    applied = check_applied(plan.placements(), run.applied(), plan.global_batch)
    if not applied.agrees and not allow_applied_mismatch:
        raise InputError(
            run.path / "applied.parquet", None,
            f"expected exactly the plan's edits; {applied.describe()}. The run is not the planned experiment, so no "
            "effect can be attributed to the plan's arms (an engine bug or an edited run)",
        )
    scores = run.scores(steps)
    _check_score_items(run, scores, plan.items())

    identity = _identity(run, plan, steps, score_steps, applied)
    tables = compute_tables(plan.meta, plan.items(), scores, run.metrics(), applied, identity, steps)
    paragraphs = experiment_paragraphs(tables)
    figures = render_figures(tables)
    results = results_document(tables, paragraphs, figures)

    with atomic_files.atomic_directory(out, replace=replace) as tmp:
        atomic_files.write_json(tmp / RESULTS_FILE, results)
        _write_parquet(tables.effects, tmp / "effects.parquet")
        atomic_files.write_text(tmp / "report.md", markdown_report(tables, paragraphs, figures))
        atomic_files.write_text(tmp / "report.html", html_report(tables, paragraphs, figures))
        for fig in figures:
            atomic_files.write_bytes(tmp / fig.name, fig.png)
    return Report(path=out, effects=tables.effects, results=results, tables=tables)


def check_report_dir(out: Path, force: bool, run_dir: Path) -> bool:
    """Whether `out` will be replaced; InputError where writing it would lose something."""
    if out.exists() and not out.is_dir():
        raise InputError(out, None, "expected a directory for the report, found a file")
    resolved = out.resolve()
    if resolved == run_dir.resolve() or resolved in run_dir.resolve().parents:
        raise InputError(out, None, "expected a report directory outside the run directory it would replace")
    if not out.exists():
        return False
    if not any(out.iterdir()):
        return True
    if not force:
        raise InputError(out, None, "expected an empty or new report directory (use --force to replace it)")
    if not (out / RESULTS_FILE).is_file():
        raise InputError(out, None, f"expected a designkit report directory (with {RESULTS_FILE}) to replace; refusing to delete another directory")
    return True


def _check_checkpoints(run: RunDir, steps: list[int]) -> None:
    found = run.checkpoints()
    missing = [s for s in steps if s not in found]
    if missing:
        raise InputError(
            run.path / "checkpoints", None,
            f"expected a complete checkpoint (with {', '.join(CHECKPOINT_FILES)}) for every planned step {steps}; missing steps {missing} "
            "(finish training with designkit train PLAN RUN --resume)",
        )


def _check_scored(run: RunDir, steps: list[int]) -> list[int]:
    files = run.score_files()
    unscored = [s for s in steps if s not in files]
    if unscored:
        raise InputError(
            run.path / "scores", None,
            f"expected scores for every checkpoint; steps {unscored} are not scored (run designkit score {run.path})",
        )
    return list(files)


def _check_score_items(run: RunDir, scores: pd.DataFrame, items: pd.DataFrame) -> None:
    keys = scores[["item_index", "item_id", "experiment"]].drop_duplicates()
    known = items[["item_index", "item_id", "experiment"]].astype({"item_index": "int32", "item_id": str, "experiment": str})
    merged = keys.merge(known, on="item_index", how="left", suffixes=("", "_plan"))
    bad = merged[(merged["item_id"] != merged["item_id_plan"]) | (merged["experiment"] != merged["experiment_plan"])]
    if len(bad):
        row = bad.iloc[0]
        raise InputError(
            run.path / "scores", "item_id",
            f"expected the items of this run's plan; item_index {int(row['item_index'])} is {row['item_id']!r} in the "
            f"scores and {row['item_id_plan']!r} in the plan (re-score with designkit score {run.path} --force)",
        )


def _identity(run: RunDir, plan: Plan, steps: list[int], score_steps: list[int], applied: AppliedCheck) -> dict[str, Any]:
    meta = plan.meta
    settings_keys = ("devices", "num_nodes", "world_size", "strategy", "accelerator", "precision", "micro_batch_size", "compile")
    return {
        "plan_name": meta.get("name"),
        "plan_seed": meta.get("seed"),
        "description": (meta.get("design") or {}).get("description", ""),
        "plan_hash": plan.hash,
        "run_plan_hash": run.plan_hash,
        "plan_hash_matches": plan.hash == run.plan_hash,
        "plan_path": str(plan.path.resolve()),
        "run_path": str(run.path.resolve()),
        "plan_designkit_version": meta.get("designkit_version"),
        "run_designkit_version": run.meta.get("designkit_version"),
        "analysis_designkit_version": designkit.__version__,
        "corpus_source": (meta.get("corpus") or {}).get("source"),
        "corpus_fingerprint": (meta.get("corpus") or {}).get("fingerprint"),
        "geometry": {k: v for k, v in (meta.get("geometry") or {}).items() if k in ("seq_len", "global_batch", "steps", "n_sequences", "total_tokens")},
        "checkpoint_steps": steps,
        "scored_steps": score_steps,
        "ignored_score_steps": [s for s in score_steps if s not in steps],
        "run_settings": {k: run.meta[k] for k in settings_keys if k in run.meta},
        "resumes": len(run.meta.get("resumes") or []),
        "applied_log": applied.to_json(),
    }


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")


__all__ = ["Report", "analyze_run"]
