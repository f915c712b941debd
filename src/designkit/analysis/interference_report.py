"""The interference report: read every sub-run's scores, test every cross effect, write REPORT.

``write_interference_report(DIR, OUT)`` reads the INTERFERENCE dir's ``interference.json``
and each ``runs/NAME`` (scores of the final checkpoint, metrics), builds the cells of
``designkit.analysis.interference`` and writes ``interference.json``,
``interference.parquet``, ``report.md`` and ``report.html`` (Jinja2 templates over one
context, figures embedded as base64 PNG in the HTML and written beside it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import designkit
from designkit import artefacts, atomic_files
from designkit.analysis.interference import FRAME_COLUMNS, OutcomeInfo, factorial_cells, one_at_a_time_cells, plain_summary
from designkit.analysis.interference_figures import heatmap_figure, loss_figure
from designkit.analysis.outcome_frame import long_outcome_frame
from designkit.analysis.render import Column, TableView, format_ci, json_safe, table_view
from designkit.errors import InputError
from designkit.planning.interference import InterferenceDir
from designkit.runfile import RunDir

FORMAT = "designkit-interference-report/1"
ALPHA = 0.05
CELL_COLUMNS = ("experiment", "outcome", "primary", "source", "comparison", "estimate", "ci_low", "ci_high", "se", "p", "p_adj",
                "family", "margin", "p_tost", "verdict", "n_items", "n_replicates", "method", "aliases")  # fmt: skip


@dataclass
class InterferenceReport:
    path: Path
    cells: pd.DataFrame
    summary: str
    design: str

    def console_summary(self) -> str:
        from designkit.console_table import format_table

        tested = self.cells[self.cells["family"] == "primary"]
        rows = [
            {"outcome of": r.experiment, "data of": r.source, "estimate": f"{r.estimate:+.4g}", "90% CI": f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]",
             "margin": f"±{r.margin:g}", "p (Holm)": f"{r.p_adj:.3g}", "verdict": r.verdict}  # fmt: skip
            for r in tested.itertuples()
        ]
        table = format_table(rows, list(rows[0])) if rows else "(no tested cells)"
        return f"{table}\n\n{self.summary}\n\nreport written to {self.path / 'report.html'}"


def check_report_dir(out: str | Path, force: bool) -> bool:
    """Whether ``out`` exists and will be replaced; InputError unless it is new, empty or (with
    ``force``) an interference report designkit wrote."""
    atomic_files.check_output_dir(out)
    return artefacts.check_output(out, "interference-report", force=force, option="--out")


def load_scores(inter: InterferenceDir) -> tuple[pd.DataFrame, list[OutcomeInfo], dict[str, pd.DataFrame]]:
    """Long frame of every run's final-checkpoint outcomes, the outcomes, and each run's metrics."""
    steps = int(inter.meta["steps"])
    parts, metrics, outcomes = [], {}, None
    for run in inter.runs:
        run_dir = inter.run_dir(run["name"])
        reader = RunDir.open(run_dir)
        if reader.plan_hash != run["plan_hash"]:
            raise InputError(run_dir / "run.json", "plan_hash", f"expected the sub-plan {run['plan']} ({run['plan_hash'][:12]}…)")
        plan = reader.plan()
        specs = plan.experiment_specs
        if outcomes is None:
            outcomes = [OutcomeInfo(s.name, o.name, o.type, o.primary) for s in specs for o in s.outcomes]
        frame = long_outcome_frame(plan.items(), reader.scores([steps]), specs)
        parts.append(frame.assign(run=run["name"], replicate=int(run["replicate"]))[list(FRAME_COLUMNS)])
        metrics[run["name"]] = reader.metrics()
    return pd.concat(parts, ignore_index=True), outcomes or [], metrics


def analyze_interference(inter: InterferenceDir, frame: pd.DataFrame, outcomes: list[OutcomeInfo], alpha: float = ALPHA) -> pd.DataFrame:
    margins = {name: m["margin"] for name, m in inter.meta["margins"].items()}
    compute = one_at_a_time_cells if inter.meta["design"] == "one-at-a-time" else factorial_cells
    cells = compute(frame, inter.runs, inter.meta["factors"], outcomes, margins, alpha)
    return cells.reindex(columns=list(CELL_COLUMNS))


def write_interference_report(directory: str | Path, out: str | Path, *, force: bool = False, alpha: float = ALPHA) -> InterferenceReport:
    replace = check_report_dir(out, force)
    inter = InterferenceDir.open(directory)
    frame, outcomes, metrics = load_scores(inter)
    cells = analyze_interference(inter, frame, outcomes, alpha)
    design = inter.meta["design"]
    summary = plain_summary(cells, design, int(inter.meta["replicates"]))

    primary = cells[cells["primary"] & cells["comparison"].isin(["cross", "own", "others"])]
    rows = [o.experiment for o in outcomes if o.primary]
    columns = list(inter.meta["factors"]) + (["others"] if design == "one-at-a-time" and len(inter.meta["factors"]) > 1 else [])
    figures = [
        ("interference_matrix.png", "Interference matrix",
         "Effect of each column's data on each row's primary outcome (one-at-a-time: j alone minus none; "
         "factorial: main effect), in outcome units, with its verdict; colour: estimate in units of the row's margin. "
         "'others': all together minus the row's experiment alone.",
         heatmap_figure(primary, rows, columns, f"{design}: estimate and verdict")),
        ("loss.png", "Loss of the sub-runs", "Training loss of every sub-run (same start, same base data).", loss_figure(metrics)),
    ]  # fmt: skip
    runs = [{"name": r["name"], "on": ", ".join(r["on"]) or "(none)", "replicate": r["replicate"],
             "final_loss": None if not len(metrics[r["name"]]) else float(metrics[r["name"]]["loss"].iloc[-1])} for r in inter.runs]  # fmt: skip
    identity = {k: inter.meta[k] for k in ("design", "resolution", "generator", "parent_plan", "parent_plan_hash", "checkpoint",
                                           "parent_step", "steps", "share", "optimizer", "replicates", "factors")}  # fmt: skip
    document = json_safe({
        "format": FORMAT,
        "designkit_version": designkit.__version__,
        "identity": identity,
        "settings": {"alpha": alpha, "ci_level": 1 - 2 * alpha, "margins": inter.meta["margins"]},
        "summary": summary,
        "cells": cells.to_dict("records"),
        "alias_table": inter.meta.get("alias_table") or [],
        "runs": runs,
        "figures": [name for name, *_ in figures],
    })
    tables = _tables(cells, inter.meta.get("alias_table") or [], runs, alpha)
    context = {
        "identity": identity,
        "ci_level": f"{100 * (1 - 2 * alpha):g}%",
        "summary": summary,
        "margins": inter.meta["margins"],
        "factorial": design == "factorial",
        **tables,
        "figures": [{"name": n, "title": t, "caption": c, "data": base64.b64encode(png).decode("ascii")} for n, t, c, png in figures],
    }
    env = _templates()
    out = Path(out)
    with atomic_files.atomic_directory(out, replace=replace) as tmp:
        atomic_files.write_json(tmp / "interference.json", document)
        cells.to_parquet(tmp / "interference.parquet", index=False)
        for name, _, _, png in figures:
            atomic_files.write_bytes(tmp / name, png)
        atomic_files.write_text(tmp / "report.md", env.get_template("interference.md").render(**context))
        atomic_files.write_text(tmp / "report.html", env.get_template("interference.html").render(**context))
    return InterferenceReport(path=out, cells=cells, summary=summary, design=design)


def _tables(cells: pd.DataFrame, alias_table: list[list[str]], runs: list[dict[str, Any]], alpha: float = ALPHA) -> dict[str, TableView]:
    """The report's tables in the shared layout (``render.table_view``, ``templates/tables.*``)."""
    level = f"{100 * (1 - 2 * alpha):g}% CI"
    shown = cells.assign(
        outcome_of=cells["experiment"] + " (" + cells["outcome"] + ")",
        ci=[format_ci(lo, hi) for lo, hi in zip(cells["ci_low"], cells["ci_high"])],
        margin_text="±" + cells["margin"].map("{:g}".format),
    )
    tested = [Column("outcome of", "outcome_of"), Column("data of", "source"), Column("comparison", "comparison"),
              Column("estimate", "estimate"), Column(level, "ci"), Column("margin", "margin_text"), Column("p", "p"),
              Column("p (Holm)", "p_adj"), Column("p (TOST)", "p_tost"), Column("verdict", "verdict")]  # fmt: skip
    if len(cells) and (cells["aliases"].fillna("") != "").any():
        tested.append(Column("aliases", "aliases"))
    own = shown[(shown["comparison"] == "own") & shown["primary"]]
    return {
        "tested": table_view(shown[shown["family"] == "primary"], tested),
        "own": table_view(own, [Column("experiment", "experiment"), Column("outcome", "outcome"), Column("estimate", "estimate"), Column(level, "ci")]),
        "secondary": table_view(shown[shown["family"] == "secondary"], [c for c in tested if c.source not in ("p_tost", "verdict", "margin_text")]),
        "aliases": table_view(pd.DataFrame({"chain": [" = ".join(chain) for chain in alias_table]}), [Column("alias chain", "chain")]),
        "runs": table_view(pd.DataFrame(runs), [Column("run", "name"), Column("on", "on"), Column("replicate", "replicate"), Column("final loss", "final_loss")]),
    }


def _templates():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    # the settings of the run report's environment, so the shared table macros read alike
    env = Environment(loader=PackageLoader("designkit.analysis", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)  # fmt: skip
    env.filters["md_cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env
