"""Plain-language paragraphs about each experiment, written from the report's tidy results.

Every number in a paragraph comes from `RunResults`; nothing is estimated here. The
wording follows the verdicts of `results`: a non-significant result is phrased as
"no detectable change" together with the smallest effect the test could detect (absence
of evidence is not evidence of absence), and a placebo (A/A) arm, never inserted, is
phrased as a check of the pipeline rather than as an experiment with an outcome.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from designkit.analysis.dose_response import SLOPE_MODEL, SLOPE_TERM
from designkit.analysis.effects import VS_CONTROL
from designkit.analysis.over_training import WINDOW_CONTRAST
from designkit.analysis.render import format_ci, format_effect, format_number, format_p
from designkit.analysis.results import (
    EFFECT_OPPOSITE,
    NO_CONTROL,
    NO_EFFECT,
    NOT_SCORED,
    NOT_TESTABLE,
    PLACEBO_EFFECT,
    RunResults,
)

EFFECT_SIZE_SYMBOLS = {"cohen_d": "d", "cohen_h": "h", "ks_distance": "D"}


def _points(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:+.1f}"


def _percent(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.0f}%"


def times(dose: int) -> str:
    return {1: "once", 2: "twice"}.get(int(dose), f"{int(dose)} times")


def experiment_paragraph(results: RunResults, info: Mapping[str, Any]) -> str:
    name = info["name"]
    if info["verdict"] == NO_CONTROL:
        return f"Experiment {name} has no control arm, so no treated-vs-control effect was estimated."
    if info["verdict"] == NOT_SCORED:
        return f"Experiment {name} has no scores for its primary outcome; nothing was estimated."
    verdicts = results.verdicts[results.verdicts["experiment"] == name]
    outcome = _outcome(info, info["primary_outcome"])
    adjusted, level = results.options.adjustment_name, results.options.ci_label
    if info["placebo"]:
        sentences = _placebo_sentences(results, info, verdicts, outcome, adjusted, level)
    else:
        sentences = [_definition(outcome)]
        for v in verdicts.itertuples(index=False):
            sentences.append(_arm_sentence(v, info, str(outcome["name"]), adjusted, level))
        sentences += _dose_response_sentences(results, name, outcome)
        sentences += _window_sentences(results, name, outcome, adjusted, level)
        sentences += _secondary_sentences(results, info, adjusted)
    sentences += _baseline_sentences(results, name, outcome)
    sentences += _power_sentences(results, name, outcome)
    return " ".join(s for s in sentences if s)


def _outcome(info: Mapping[str, Any], outcome_name: str | None) -> dict[str, Any]:
    for o in info["outcomes"]:
        if o["name"] == outcome_name:
            return dict(o)
    return {"name": outcome_name or "the outcome", "type": "continuous", "description": None}


def _definition(outcome: Mapping[str, Any]) -> str:
    """`Primary outcome: loss, mean per-token loss of the canary (nats).`"""
    description = outcome.get("description")
    if not description:
        return f"Primary outcome: {outcome['name']}."
    return f"Primary outcome: {outcome['name']}, {str(description).split(';')[0].strip()}."


def _window_text(info: Mapping[str, Any], arm: str) -> str:
    window = (info["arms"].get(arm) or {}).get("window")
    if not window or tuple(window) == (0.0, 1.0):
        return ""
    return f" during {_percent(window[0])}–{_percent(window[1])} of the run"


def _change(v: Any, label: str, adjusted: str, level: str) -> str:
    """`raised X by …` / `did not detectably change X …`, with CI and adjusted p."""
    binary = v.outcome_type == "binary"
    es = f"{EFFECT_SIZE_SYMBOLS.get(v.effect_size_name, v.effect_size_name)} = {format_number(v.effect_size, 2)}"
    stats_text = f"{level} {format_ci(v.ci_low, v.ci_high, binary)}; {adjusted} p = {format_p(v.p_adj)}; {es}"
    if v.verdict in (NO_EFFECT, NOT_TESTABLE) or v.verdict.startswith("null"):
        estimate = format_effect(v.estimate, binary)
        return f"did not detectably change {label} (estimate {estimate}; {stats_text})"
    verb = "raised" if v.estimate > 0 else "lowered"
    if binary:
        return (f"{verb} {label} from {_percent(v.control_mean)} to {_percent(v.treated_mean)} "
                f"({_points(v.estimate)} percentage points; {stats_text})")
    return (f"{verb} {label} by {format_number(abs(v.estimate))}, from {format_number(v.control_mean)} to "
            f"{format_number(v.treated_mean)} ({stats_text})")


def _arm_sentence(v: Any, info: Mapping[str, Any], label: str, adjusted: str, level: str) -> str:
    singular, plural = info["item_noun"]
    counts = f"{v.n_treated} vs {v.n_control}" if v.comparison == VS_CONTROL else str(v.n_treated)
    phrase = info.get("treatment", "Inserting each {item} {times}").format(item=singular, times=times(v.dose))
    lead = f"{phrase}{_window_text(info, v.arm)} (arm {v.arm}, {counts} {plural})"
    if v.verdict == NOT_TESTABLE:
        return f"{lead}: the effect on {label} could not be tested at step {v.step} (too few scored items or no variation)."
    if v.comparison != VS_CONTROL:  # an estimator that does not difference against the control arm
        symbol = EFFECT_SIZE_SYMBOLS.get(v.effect_size_name, v.effect_size_name)
        return (f"{lead}: {label} against {v.control_arm} gave {symbol} = {format_number(v.estimate)} ({level} "
                f"{format_ci(v.ci_low, v.ci_high)}; {adjusted} p = {format_p(v.p_adj)}; {v.method}): {v.verdict}.")
    text = f"{lead} {_change(v, label, adjusted, level)}"
    if v.verdict == EFFECT_OPPOSITE:
        text += ", the opposite of the expected direction"
    elif v.verdict == NO_EFFECT:
        text += "; not evidence of no effect, only of none larger than the test could see"
    return text + "."


def _placebo_sentences(results: RunResults, info: Mapping[str, Any], verdicts: pd.DataFrame,
                       outcome: Mapping[str, Any], adjusted: str, level: str) -> list[str]:
    _, plural = info["item_noun"]
    sentences = [f"Experiment {info['name']} is a placebo (A/A) check: its arms were randomized and scored like any "
                 f"experiment, but none of its {plural} was ever inserted, so no arm should differ from control.",
                 _definition(outcome)]
    for v in verdicts.itertuples(index=False):
        label = str(outcome["name"])
        if v.verdict == PLACEBO_EFFECT:
            sentences.append(
                f"RED FLAG: arm {v.arm} (nominal dose {v.dose}, never inserted) differs from control: it "
                f"{_change(v, label, adjusted, level).replace('did not detectably change', 'changed')}. Nothing was "
                "inserted for this arm, so this is not a treatment effect; check the pipeline (items leaking into "
                "the corpus or into other arms, arms scored differently, broken randomization) before trusting the "
                "other experiments."
            )
        elif v.verdict == NOT_TESTABLE:
            sentences.append(f"Arm {v.arm} could not be tested against control (too few scored items or no variation).")
        else:
            text = (f"As expected, arm {v.arm} (nominal dose {v.dose}, never inserted) did not differ from control "
                    f"on {label}: estimate {format_effect(v.estimate, v.outcome_type == 'binary')} "
                    f"({level} {format_ci(v.ci_low, v.ci_high, v.outcome_type == 'binary')}; {adjusted} p = {format_p(v.p_adj)})")
            if v.p < results.options.alpha:
                text += f"; the unadjusted p = {format_p(v.p)} is below {results.options.alpha:g}, worth a second look"
            sentences.append(text + ".")
        sentences += _equivalence_sentences(results, v)
    return sentences


def _equivalence_sentences(results: RunResults, v: Any) -> list[str]:
    eq = results.equivalence
    if eq.empty:
        return []
    rows = eq[(eq["experiment"] == v.experiment) & (eq["outcome"] == v.outcome) & (eq["arm"] == v.arm)]
    if rows.empty:
        return []
    r = rows.iloc[0]
    symbol = EFFECT_SIZE_SYMBOLS.get(r["effect_size_name"], r["effect_size_name"])
    margin = f"±{format_number(r['margin_effect_size'], 2)} in {symbol} units"
    if r["note"]:
        return [f"Equivalence within {margin} could not be tested ({r['note']})."]
    binary = r["outcome_type"] == "binary"
    bounds = format_ci(r["margin_low"], r["margin_high"], binary)
    ci = f"{100 * r['ci_level']:g}% CI {format_ci(r['ci_low'], r['ci_high'], binary)}"
    if r["equivalent"]:
        return [f"A TOST equivalence test confirms the difference lies within {margin} ({bounds}; {ci}; p = {format_p(r['p_tost'])})."]
    return [f"A TOST equivalence test could not show the difference lies within {margin} ({bounds}; {ci}; "
            f"p = {format_p(r['p_tost'])}): the check lacks the precision to rule out such an effect, which is not a failure."]


def _dose_response_sentences(results: RunResults, experiment: str, outcome: Mapping[str, Any]) -> list[str]:
    fits = results.dose_response.table
    if fits.empty:
        return []
    row = fits[(fits["experiment"] == experiment) & (fits["outcome"] == outcome["name"])
               & (fits["model"] == SLOPE_MODEL) & (fits["term"] == SLOPE_TERM)]
    if row.empty:
        return []
    r = row.iloc[0]
    if r["note"]:
        return [f"The dose-response fit on {outcome['name']} is not reported: {r['note']}."]
    scale = "the log-odds of " if r["glm_family"] == "binomial" else ""
    return [f"Across doses, {scale}{outcome['name']} changed by {format_effect(r['estimate'], False)} per unit of log(1 + dose) "
            f"({100 * (1 - r['alpha']):g}% CI {format_ci(r['ci_low'], r['ci_high'])}; p = {format_p(r['p'])}, unadjusted)."]


def _window_sentences(results: RunResults, experiment: str, outcome: Mapping[str, Any], adjusted: str, level: str) -> list[str]:
    e = results.effects
    rows = e[(e["experiment"] == experiment) & (e["outcome"] == outcome["name"]) & (e["comparison"] == WINDOW_CONTRAST)]
    sentences = []
    for r in rows.itertuples(index=False):
        binary = r.outcome_type == "binary"
        estimate = format_effect(r.estimate, binary)
        sentences.append(
            f"At equal dose, arm {r.arm} (inserted later) minus arm {r.control_arm} (inserted earlier) differed by "
            f"{estimate} on {outcome['name']} at step {r.step} ({level} {format_ci(r.ci_low, r.ci_high, binary)}; "
            f"{adjusted} p = {format_p(r.p_adj)}, exploratory)."
        )
    return sentences


def _secondary_sentences(results: RunResults, info: Mapping[str, Any], adjusted: str) -> list[str]:
    """The other outcomes at the highest dose and final step: how the kind separates mechanisms
    (e.g. contamination's recall contrasts against familiarity), all exploratory."""
    e = results.effects
    final = max(results.checkpoint_steps) if results.checkpoint_steps else None
    rows = e[(e["experiment"] == info["name"]) & (e["comparison"] == VS_CONTROL) & (e["step"] == final)
             & (e["outcome"] != info["primary_outcome"])]
    if rows.empty:
        return []
    top = rows[rows["dose"] == rows["dose"].max()]
    top = top[top["arm"] == top["arm"].iloc[0]]  # one arm, even when two share the highest dose
    descriptions = {o["name"]: o.get("description") for o in info["outcomes"]}
    parts = []
    for r in top.itertuples(index=False):
        if math.isnan(r.p):
            continue
        binary = r.outcome_type == "binary"
        estimate = format_effect(r.estimate, binary)
        what = descriptions.get(r.outcome)
        label = f"{r.outcome} [{str(what).split(';')[0].strip()}]" if what else r.outcome
        parts.append(f"{label}: {estimate} ({format_ci(r.ci_low, r.ci_high, binary)}; p = {format_p(r.p)}, {adjusted} {format_p(r.p_adj)})")
    if not parts:
        return []
    return [f"Secondary outcomes at the highest dose (arm {top['arm'].iloc[0]}, exploratory): " + "; ".join(parts) + "."]


def _baseline_sentences(results: RunResults, experiment: str, outcome: Mapping[str, Any]) -> list[str]:
    """The untrained checkpoint (step 0): arms should not differ there, by randomization."""
    e = results.effects
    rows = e[(e["experiment"] == experiment) & (e["outcome"] == outcome["name"]) & (e["comparison"] == VS_CONTROL) & (e["step"] == 0)]
    if rows.empty:
        return []
    flagged = rows[rows["p"] < results.options.alpha]
    if flagged.empty:
        largest = rows["p"].min()
        return [f"At step 0 (the untrained model) no arm differed from control (smallest unadjusted p = {format_p(largest)}), as randomization implies."]
    arms = ", ".join(f"{r.arm} (p = {format_p(r.p)})" for r in flagged.itertuples(index=False))
    return [f"At step 0 (the untrained model) arm {arms} already differed from control, before any insertion: "
            f"expected in about 1 of {round(1 / results.options.alpha)} comparisons by chance (α = {results.options.alpha:g}), "
            "but read the final effect with that imbalance in mind."]


def _power_sentences(results: RunResults, experiment: str, outcome: Mapping[str, Any]) -> list[str]:
    p = results.power
    if p.empty:
        return []
    rows = p[(p["experiment"] == experiment) & (p["outcome"] == outcome["name"])]
    parts = []
    for r in rows.itertuples(index=False):
        symbol = EFFECT_SIZE_SYMBOLS.get(r.effect_size_name, r.effect_size_name)
        planned = getattr(r, "planned_mde_effect_size", math.nan)
        planned_text = f" (planned: {format_number(planned, 2)})" if isinstance(planned, float) and not math.isnan(planned) else ""
        parts.append(f"{r.arm} |{symbol}| ≥ {format_number(r.mde_effect_size, 2)}{planned_text}")
    if not parts:
        return []
    return [f"At {100 * results.options.power:g}% power the final tests could detect effects of " + "; ".join(parts) + "."]


__all__ = ["experiment_paragraph"]
