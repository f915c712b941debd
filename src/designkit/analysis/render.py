"""`RunResults` as results.json, report.md and a self-contained report.html.

One table renderer (`table_view`) formats every table once: numbers to a few significant
digits, p-values without false precision, and the alignment of each column from the dtype
of the column it was formatted from (never guessed from the formatted text). The Jinja2
templates `templates/report.md` and `templates/report.html` lay the same content out in
each format; the HTML has its CSS inline and its figures as base64 `data:` URIs, so it is
one file that opens anywhere, offline.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from designkit.analysis.over_training import WINDOW_CONTRAST
from designkit.analysis.overview import loss_comparison, overview_frame
from designkit.analysis.results import RunResults

RESULTS_FORMAT = "designkit-report/1"
RESULTS_KEYS = ("format", "identity", "settings", "overview", "baseline_loss", "experiments", "verdicts", "effects", "contrasts",
                "dose_response", "power", "equivalence", "arm_means", "sections", "red_flags", "warnings", "figures", "files")
REPORT_FILES = ("results.json", "effects.parquet", "report.md", "report.html")
P_COLUMNS = ("p", "p_adj", "p_tost")


def format_p(p: float) -> str:
    """`3e-8`, `0.0012`, `0.042`, `0.31`, `1`: two significant digits, no false precision."""
    if p is None or math.isnan(p):
        return "n/a"
    if p < 1e-3:
        mantissa, exponent = f"{p:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return "1" if p >= 0.995 else f"{p:.2g}"


def format_number(x: float | None, digits: int = 3) -> str:
    """A number with `digits` significant digits (at most 4 decimals), '–' for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-4:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, min(4, digits - 1 - int(math.floor(math.log10(abs(x))))))
    return f"{x:.{decimals}f}"


def format_effect(x: float, binary: bool, signed: bool = True) -> str:
    """An effect in its outcome's units: percentage points for binary outcomes."""
    if binary:
        return "–" if math.isnan(x) else f"{100 * x:+.1f} pp"
    text = format_number(x)
    return f"+{text}" if signed and not (text.startswith("-") or text in ("–", "0")) else text


def format_ci(low: float, high: float, binary: bool = False) -> str:
    if math.isnan(low) or math.isnan(high):
        return "–"
    if binary:
        return f"{100 * low:+.1f} to {100 * high:+.1f} pp"
    return f"{format_number(low)} to {format_number(high)}"


def format_cell(value: Any, column: str = "") -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value) and column not in P_COLUMNS):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return format_p(float(value)) if column in P_COLUMNS else format_number(float(value))
    return str(value)


Formatter = Callable[[Any, Mapping[str, Any]], str]


@dataclass(frozen=True)
class Column:
    """One column of a rendered table: its header, the frame column it is formatted from, how."""

    header: str
    source: str
    format: Formatter | None = None
    """(value, row) -> text; default `format_cell`."""


@dataclass(frozen=True)
class TableView:
    """A formatted table: headers, cell texts, and which columns are numeric (right-aligned)."""

    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.headers, row)) for row in self.rows]


def table_view(frame: pd.DataFrame, columns: Sequence[Column | str]) -> TableView:
    """Format `frame`; a plain string names a column shown as it is."""
    specs = [c if isinstance(c, Column) else Column(c, c) for c in columns]
    specs = [c for c in specs if c.source in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c.source]) and not pd.api.types.is_bool_dtype(frame[c.source])
               for c in specs]
    rows = [[(c.format or (lambda v, r, name=c.source: format_cell(v, name)))(record[c.source], record) for c in specs]
            for record in frame.to_dict("records")]
    return TableView([c.header for c in specs], rows, numeric)


def confirmatory_table(results: RunResults) -> TableView:
    def binary(row: Mapping[str, Any]) -> bool:
        return row["outcome_type"] == "binary"

    return table_view(results.verdicts, [
        "experiment", "arm", "dose", "outcome",
        Column("estimate", "estimate", lambda v, r: format_effect(v, binary(r))),
        Column(results.options.ci_label, "ci_low", lambda v, r: format_ci(v, r["ci_high"], binary(r))),
        "p_adj", "verdict",
    ])


def overview_table(results: RunResults) -> TableView:
    """Every experiment on one screen: primary effect (largest-dose arm), CI, verdict, share of the run."""
    frame = overview_frame(results)

    def binary(row: Mapping[str, Any]) -> bool:
        return row["outcome_type"] == "binary"

    columns = [
        "experiment", "kind", "outcome", "arm",
        Column("primary effect", "estimate", lambda v, r: format_effect(v, binary(r))),
        Column(results.options.ci_label, "ci_low", lambda v, r: format_ci(v, r["ci_high"], binary(r))),
        "p_adj", "verdict",
        Column("share of run (tokens)", "share_of_run", lambda v, r: f"{100 * v:.3f}%"),
    ]
    if frame["sequence_share"].gt(0).any():
        columns.append(Column("sequences edited", "sequence_share", lambda v, r: f"{100 * v:.3f}%"))
    return table_view(frame, columns)


def loss_table(results: RunResults) -> TableView | None:
    frame = loss_comparison(results)
    if frame.empty:
        return None
    return table_view(frame, [
        "measure", Column("with the experiments", "with_experiments"), Column("without (reference run)", "without_experiments"),
        Column("difference", "difference", lambda v, r: format_effect(v, False)),
        Column("relative", "relative", lambda v, r: "–" if math.isnan(v) else f"{100 * v:+.2f}%"),
    ])


EFFECT_COLUMNS = ("experiment", "outcome", "arm", "control_arm", "dose", "step", "estimate", "ci_low", "ci_high",
                  "p", "p_adj", "family", "effect_size", "effect_size_name", "n_treated", "n_control", "estimator", "note")
DOSE_COLUMNS = ("experiment", "outcome", "model", "term", "estimate", "ci_low", "ci_high", "p", "glm_family", "n_obs", "note")
POWER_COLUMNS = ("experiment", "arm", "outcome", "n_treated", "n_control", "mde_effect_size", "planned_mde_effect_size",
                 "observed_effect_size", "effect_size_name", "mde_natural", "planned_mde_natural")
EQUIVALENCE_COLUMNS = ("experiment", "outcome", "arm", "step", "margin_effect_size", "margin_low", "margin_high",
                       "estimate", "ci_low", "ci_high", "p_tost", "equivalent", "note")


def table_sections(results: RunResults) -> list[tuple[str, str, TableView]]:
    """(title, intro, table) of every table after the experiments, estimators' own sections included."""
    e = results.effects
    final = e[e["step"] == e.groupby("experiment")["step"].transform("max")] if len(e) else e
    sections = [
        ("Table of every effect at the final checkpoint",
         "Confirmatory rows are each experiment's primary outcome; the rest are exploratory and adjusted as a separate "
         "family. Window contrasts compare a late-window arm to an early-window arm. effects.parquet holds every "
         "checkpoint.", final, EFFECT_COLUMNS),
        ("Dose-response GLMs",
         "Final checkpoint; log1p_dose: one slope per unit of log(1 + dose); dose_categorical: one mean per dose against "
         "dose 0. Binary outcomes on the log-odds scale. Unadjusted p.", results.dose_response.table, DOSE_COLUMNS),
        ("Power: achieved vs planned minimal detectable effect",
         f"Smallest effect (in effect-size units) the final two-sided test detects with {100 * results.options.power:g}% "
         "power, given the items actually scored, next to the plan's.", results.power, POWER_COLUMNS),
        ("Placebo equivalence (TOST)",
         "The design's margin in effect-size units, converted to outcome units at the final step; equivalent when the "
         "(1 - 2 alpha) CI lies inside the margin.", results.equivalence, EQUIVALENCE_COLUMNS),
    ]
    sections += [(s.title, s.intro, s.table, list(s.table.columns)) for s in results.sections]
    return [(title, intro, table_view(frame, columns)) for title, intro, frame, columns in sections if len(frame)]


def identity_table(results: RunResults) -> TableView:
    ident, applied, options = results.identity, results.applied, results.options
    rows = [
        ("plan", f"{ident.get('plan_name')} (seed {ident.get('plan_seed')})"),
        ("plan hash", ident.get("plan_hash")),
        ("run's recorded plan hash", ident.get("run_plan_hash")),
        ("plan hash matches", "yes" if ident.get("plan_hash") == ident.get("run_plan_hash") else "NO"),
        ("plan dir", ident.get("plan_path")),
        ("run dir", ident.get("run_path")),
        ("designkit version (plan / run / analysis)", " / ".join(str(ident.get(f"{k}_designkit_version")) for k in ("plan", "run", "analysis"))),
        ("corpus", f"{ident.get('corpus_source')} (fingerprint {ident.get('corpus_fingerprint')})"),
        ("geometry", ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in (ident.get("geometry") or {}).items())),
        ("checkpoint steps", ", ".join(map(str, results.checkpoint_steps))),
        ("applied log vs plan", applied.describe()),
        ("edits by kind (planned)", ", ".join(f"{k} {v:,}" for k, v in applied.planned_by_edit.items()) or "none"),
        ("run settings", ", ".join(f"{k}={v}" for k, v in (ident.get("run_settings") or {}).items())),
        ("analysis options", f"{options.adjustment_name.removesuffix('-adjusted')} within each family; alpha {options.alpha:g}; "
                             f"power {options.power:g}; continuous outcomes: {options.continuous_method}; equivalence margin "
                             f"{'none' if options.equivalence_margin is None else f'{options.equivalence_margin:g}'}"),
    ]
    if ident.get("ignored_score_steps"):
        rows.append(("scores ignored (steps without a planned checkpoint)", ", ".join(map(str, ident["ignored_score_steps"]))))
    return table_view(pd.DataFrame(rows, columns=["field", "value"]).fillna("–"), ["field", "value"])


def results_document(results: RunResults, figures: Sequence[Any]) -> dict[str, Any]:
    """The machine-readable report; NaN becomes null so the file is strict JSON."""
    effects = results.effects
    comparison = effects["comparison"] if len(effects) else pd.Series(dtype=str)
    return json_safe({
        "format": RESULTS_FORMAT,
        "identity": results.identity,
        "settings": {**dataclasses.asdict(results.options), "checkpoint_steps": results.checkpoint_steps},
        "overview": _records(overview_frame(results)),
        "baseline_loss": {"reference": results.baseline_identity, "rows": _records(loss_comparison(results))}
        if results.baseline_identity is not None else None,
        "experiments": [{**info, "summary": results.paragraphs.get(info["name"], "")} for info in results.experiments],
        "verdicts": _records(results.verdicts),
        "effects": _records(effects[comparison != WINDOW_CONTRAST] if len(effects) else effects),
        "contrasts": _records(effects[comparison == WINDOW_CONTRAST] if len(effects) else effects),
        "dose_response": _records(results.dose_response.table),
        "power": _records(results.power),
        "equivalence": _records(results.equivalence),
        "arm_means": _records(results.arm_means),
        "sections": [{"title": s.title, "intro": s.intro, "rows": _records(s.table)} for s in results.sections],
        "red_flags": results.red_flags,
        "warnings": results.warnings,
        "figures": [{"file": f.name, "title": f.title, "caption": f.caption, "experiment": f.experiment} for f in figures],
        "files": list(REPORT_FILES) + [f.name for f in figures],
    })


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf and pandas NA as null."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return value if isinstance(value, str) else str(value)


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("designkit.analysis", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)
_ENVIRONMENT.filters["base64"] = lambda data: base64.b64encode(data).decode("ascii")
_ENVIRONMENT.filters["md_cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")


def render(template: str, results: RunResults, figures: Sequence[Any]) -> str:
    """`report.md` or `report.html` of `results` with its `figures` (`figures.FigureFile`)."""
    by_experiment: dict[str | None, list[Any]] = {}
    for fig in figures:
        by_experiment.setdefault(fig.experiment, []).append(fig)
    return _ENVIRONMENT.get_template(template).render(
        results=results, name=results.identity.get("plan_name"), red_flags=results.red_flags, warnings=results.warnings,
        confirmatory=confirmatory_table(results), sections=table_sections(results), identity=identity_table(results),
        figures=by_experiment, paragraphs=results.paragraphs, overview=overview_table(results), loss=loss_table(results),
        reference=results.baseline_identity,
    )
