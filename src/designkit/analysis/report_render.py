"""Render `ReportTables` as results.json, report.md and a self-contained report.html.

Renderers format numbers and lay out tables; they compute no statistic. The HTML page has
its CSS inline and its figures as base64 `data:` URIs, so it is one file that opens
anywhere, offline, and can be attached to an issue or an e-mail.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from designkit.analysis.effects import VS_CONTROL
from designkit.analysis.figures import FigureFile, figure_index
from designkit.analysis.over_training import WINDOW_CONTRAST
from designkit.analysis.report_tables import ReportTables
from designkit.analysis.summary_text import ADJUSTMENT_NAMES, format_number, format_p

RESULTS_FORMAT = "designkit-report/1"
RESULTS_KEYS = (
    "format", "identity", "settings", "experiments", "verdicts", "effects", "contrasts", "dose_response",
    "power", "equivalence", "arm_means", "red_flags", "figures", "files",
)
REPORT_FILES = ("results.json", "effects.parquet", "report.md", "report.html")


# results.json
def results_document(tables: ReportTables, paragraphs: Mapping[str, str], figures: Sequence[FigureFile]) -> dict[str, Any]:
    """The machine-readable report; NaN becomes null so the file is strict JSON."""
    effects = tables.effects
    vs_control = effects[effects["comparison"] == VS_CONTROL] if len(effects) else effects
    contrasts = effects[effects["comparison"] == WINDOW_CONTRAST] if len(effects) else effects
    experiments = [{**info, "summary": paragraphs.get(info["name"], "")} for info in tables.experiments]
    document = {
        "format": RESULTS_FORMAT,
        "identity": tables.identity,
        "settings": {**_asdict(tables.settings), "checkpoint_steps": tables.checkpoint_steps},
        "experiments": experiments,
        "verdicts": _records(tables.verdicts),
        "effects": _records(vs_control),
        "contrasts": _records(contrasts),
        "dose_response": _records(tables.dose_response),
        "power": _records(tables.power),
        "equivalence": _records(tables.equivalence),
        "arm_means": _records(tables.arm_means),
        "red_flags": tables.red_flags,
        "figures": figure_index(figures),
        "files": list(REPORT_FILES) + [f.name for f in figures],
    }
    return json_safe(document)


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return frame.to_dict("records")


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf and pandas NA as null."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return value if isinstance(value, str) else str(value)


# shared table rows
def confirmatory_rows(tables: ReportTables) -> list[dict[str, str]]:
    level = f"{100 * (1 - tables.settings.alpha):g}% CI"
    rows = []
    for v in tables.verdicts.itertuples(index=False):
        rows.append({
            "experiment": v.experiment, "arm": v.arm, "dose": str(v.dose), "outcome": v.outcome,
            "estimate": _estimate(v.estimate, v.outcome_type), level: _ci(v.ci_low, v.ci_high, v.outcome_type),
            "p_adj": format_p(v.p_adj), "verdict": v.verdict,
        })
    return rows


def _estimate(x: float, outcome_type: str) -> str:
    if outcome_type == "binary" and not math.isnan(x):
        return f"{100 * x:+.1f} pp"
    return format_number(x)


def _ci(low: float, high: float, outcome_type: str) -> str:
    if math.isnan(low) or math.isnan(high):
        return "–"
    if outcome_type == "binary":
        return f"[{100 * low:+.1f}, {100 * high:+.1f}] pp"
    return f"[{format_number(low)}, {format_number(high)}]"


def identity_rows(tables: ReportTables) -> list[dict[str, str]]:
    ident = tables.identity
    applied = tables.applied
    rows = [
        ("plan", f"{ident.get('plan_name')} (seed {ident.get('plan_seed')})"),
        ("plan hash", ident.get("plan_hash")),
        ("run's recorded plan hash", ident.get("run_plan_hash")),
        ("plan hash matches", "yes" if ident.get("plan_hash") == ident.get("run_plan_hash") else "NO"),
        ("plan dir", ident.get("plan_path")),
        ("run dir", ident.get("run_path")),
        ("designkit version (plan / run / analysis)",
         f"{ident.get('plan_designkit_version')} / {ident.get('run_designkit_version')} / {ident.get('analysis_designkit_version')}"),
        ("corpus", f"{ident.get('corpus_source')} (fingerprint {ident.get('corpus_fingerprint')})"),
        ("geometry", ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in (ident.get("geometry") or {}).items())),
        ("checkpoint steps", ", ".join(map(str, tables.checkpoint_steps))),
        ("applied log vs plan", applied.describe()),
        ("edits by kind (planned)", ", ".join(f"{k} {v:,}" for k, v in applied.planned_by_edit.items()) or "none"),
        ("run settings", ", ".join(f"{k}={v}" for k, v in (ident.get("run_settings") or {}).items())),
        ("multiplicity", f"{ADJUSTMENT_NAMES.get(tables.settings.multiplicity, tables.settings.multiplicity)} within each family; alpha {tables.settings.alpha:g}"),
    ]
    if ident.get("ignored_score_steps"):
        rows.append(("scores ignored (steps without a planned checkpoint)", ", ".join(map(str, ident["ignored_score_steps"]))))
    return [{"field": k, "value": "–" if v is None else str(v)} for k, v in rows]


def _frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, str]]:
    rows = []
    for record in frame.to_dict("records"):
        rows.append({c: _cell(c, record.get(c)) for c in columns})
    return rows


def _cell(column: str, value: Any) -> str:
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if column.startswith("p") and column in ("p", "p_adj", "p_tost"):
            return format_p(float(value))
        return format_number(float(value))
    return str(value)


EFFECT_COLUMNS = ("experiment", "outcome", "arm", "control_arm", "dose", "step", "estimate", "ci_low", "ci_high",
                  "p", "p_adj", "family", "effect_size", "effect_size_name", "n_treated", "n_control", "note")
DOSE_COLUMNS = ("experiment", "outcome", "model", "term", "estimate", "ci_low", "ci_high", "p", "glm_family", "n_obs", "note")
POWER_COLUMNS = ("experiment", "arm", "outcome", "n_treated", "n_control", "mde_effect_size", "planned_mde_effect_size",
                 "observed_effect_size", "effect_size_name", "mde_natural", "planned_mde_natural")
EQUIVALENCE_COLUMNS = ("experiment", "outcome", "arm", "step", "margin_effect_size", "margin_low", "margin_high",
                       "estimate", "ci_low", "ci_high", "p_tost", "equivalent", "note")


def _sections(tables: ReportTables) -> list[tuple[str, str, list[dict[str, str]], Sequence[str]]]:
    """(title, intro, rows, columns) of every table section after the experiments."""
    e = tables.effects
    final = e[(e["step"] == e.groupby("experiment")["step"].transform("max"))] if len(e) else e
    sections = []
    if len(final):
        sections.append(("Table of every effect at the final checkpoint",
                         "Confirmatory rows are each experiment's primary outcome; the rest are exploratory and adjusted "
                         "as a separate family. Window contrasts compare a late-window arm to an early-window arm. "
                         "effects.parquet holds every checkpoint.",
                         _frame_rows(final, EFFECT_COLUMNS), EFFECT_COLUMNS))
    if len(tables.dose_response):
        sections.append(("Dose-response GLMs",
                         "Final checkpoint; log1p_dose: one slope per unit of log(1 + dose); dose_categorical: one mean "
                         "per dose against dose 0. Binary outcomes on the log-odds scale. Unadjusted p.",
                         _frame_rows(tables.dose_response, DOSE_COLUMNS), DOSE_COLUMNS))
    if len(tables.power):
        columns = [c for c in POWER_COLUMNS if c in tables.power.columns]
        sections.append(("Power: achieved vs planned minimal detectable effect",
                         f"Smallest effect (in effect-size units) the final two-sided test detects with "
                         f"{100 * tables.settings.power:g}% power, given the items actually scored, next to the plan's.",
                         _frame_rows(tables.power, columns), columns))
    if len(tables.equivalence):
        sections.append(("Placebo equivalence (TOST)",
                         "The design's margin in effect-size units, converted to outcome units at the final step; "
                         "equivalent when the (1 - 2 alpha) CI lies inside the margin.",
                         _frame_rows(tables.equivalence, EQUIVALENCE_COLUMNS), EQUIVALENCE_COLUMNS))
    return sections


# Markdown
def markdown_report(tables: ReportTables, paragraphs: Mapping[str, str], figures: Sequence[FigureFile]) -> str:
    name = tables.identity.get("plan_name")
    lines = [f"# designkit report: {name}", ""]
    for flag in tables.red_flags:
        lines += [f"> **RED FLAG:** {flag}", ""]
    lines += ["## Confirmatory results", "", _md_table(confirmatory_rows(tables)), ""]
    lines += ["## Experiments", ""]
    by_experiment = _figures_by_experiment(figures)
    for info in tables.experiments:
        placebo = ", placebo" if info["placebo"] else ""
        lines += [f"### {info['name']} ({info['kind']}{placebo}): {info['verdict']}", "", paragraphs.get(info["name"], ""), ""]
        for fig in by_experiment.get(info["name"], []):
            lines += [f"![{fig.title}]({fig.name})", "", f"*{fig.caption}*", ""]
    for fig in by_experiment.get(None, []):
        lines += [f"## {fig.title}", "", f"![{fig.title}]({fig.name})", "", f"*{fig.caption}*", ""]
    for title, intro, rows, columns in _sections(tables):
        lines += [f"## {title}", "", intro, "", _md_table(rows, columns), ""]
    lines += ["## Run and plan identity", "", _md_table(identity_rows(tables)), ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_table(rows: Sequence[Mapping[str, str]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "*(none)*"
    columns = list(columns or rows[0].keys())

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def _figures_by_experiment(figures: Sequence[FigureFile]) -> dict[str | None, list[FigureFile]]:
    grouped: dict[str | None, list[FigureFile]] = {}
    for fig in figures:
        grouped.setdefault(fig.experiment, []).append(fig)
    return grouped


# HTML
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.flag { background: #fdecea; border-left: 6px solid #c0392b; padding: .6em 1em; margin: 1em 0; font-weight: 600; }
.ok { background: #eaf7ee; border-left: 6px solid #2e8b57; padding: .4em 1em; margin: 1em 0; }
.verdict { font-weight: normal; color: #555; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.summary { background: #f8f8fb; padding: .6em 1em; border-radius: 4px; }
"""


def html_report(tables: ReportTables, paragraphs: Mapping[str, str], figures: Sequence[FigureFile]) -> str:
    e = html.escape
    name = tables.identity.get("plan_name")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>designkit report: {e(str(name))}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>designkit report: {e(str(name))}</h1>",
    ]
    flags = tables.red_flags
    for flag in flags:
        parts.append(f'<div class="flag">RED FLAG: {e(flag)}</div>')
    if not flags:
        parts.append(f'<div class="ok">{e(tables.applied.describe())}; no placebo arm differs from control.</div>')
    parts += ["<h2>Confirmatory results</h2>", _html_table(confirmatory_rows(tables))]
    parts.append("<h2>Experiments</h2>")
    by_experiment = _figures_by_experiment(figures)
    for info in tables.experiments:
        placebo = ", placebo" if info["placebo"] else ""
        parts.append(f'<h3>{e(info["name"])} ({e(info["kind"])}{placebo}) <span class="verdict">— {e(info["verdict"])}</span></h3>')
        parts.append(f'<p class="summary">{e(paragraphs.get(info["name"], ""))}</p>')
        parts += [_html_figure(fig) for fig in by_experiment.get(info["name"], [])]
    for fig in by_experiment.get(None, []):
        parts += [f"<h2>{e(fig.title)}</h2>", _html_figure(fig)]
    for title, intro, rows, columns in _sections(tables):
        parts += [f"<h2>{e(title)}</h2>", f"<p>{e(intro)}</p>", _html_table(rows, columns)]
    parts += ["<h2>Run and plan identity</h2>", _html_table(identity_rows(tables))]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _html_figure(fig: FigureFile) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")


def _html_table(rows: Sequence[Mapping[str, str]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p><em>(none)</em></p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            text = str(r.get(c, ""))
            numeric = _looks_numeric(text)
            cells.append(f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace(",", "").replace(" pp", ""))
    except ValueError:
        return False
    return True


__all__ = ["REPORT_FILES", "RESULTS_FORMAT", "RESULTS_KEYS", "html_report", "json_safe", "markdown_report", "results_document"]
