"""`analyze_run` on a fabricated real-format run: planted effects found, the placebo not flagged,
every report file written, the HTML self-contained, results.json strict JSON."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from designkit.analysis.report import analyze_run
from designkit.analysis.render import RESULTS_KEYS
from designkit.analysis.results import EFFECT, PLACEBO_EFFECT, PLACEBO_NULL

from .test_report_fabricated_run import make_run, plan_hash, plan_meta, report_plan_dir

FINAL_STEP = 40


@pytest.fixture(scope="module")
def plan_dir(tiny_corpus, tmp_path_factory):
    return report_plan_dir(tiny_corpus, tmp_path_factory.getbasetemp() / "report-plan")


@pytest.fixture(scope="module")
def report(plan_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("analyzed")
    return analyze_run(make_run(root / "run", plan_dir), root / "report")


def _verdict(report, experiment, arm):
    v = report.results.verdicts
    return v[(v["experiment"] == experiment) & (v["arm"] == arm)].iloc[0]


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_report_finds_the_planted_effects(report):
    for arm in ("x2", "x6"):
        v = _verdict(report, "bench", arm)
        assert v["verdict"] == EFFECT and v["estimate"] > 0 and v["p_adj"] < 0.05
    assert _verdict(report, "bench", "x6")["estimate"] > _verdict(report, "bench", "x2")["estimate"]
    for arm in ("early", "late"):
        v = _verdict(report, "canary", arm)
        assert v["verdict"] == EFFECT and v["estimate"] < 0  # loss falls
    fits = report.results.dose_response.table
    slope = fits[(fits["experiment"] == "bench") & (fits["outcome"] == "margin") & (fits["term"] == "log1p(dose)")]
    assert slope["estimate"].iloc[0] > 0 and slope["p"].iloc[0] < 0.05
    assert set(fits["experiment"]) == {"bench"}  # only bench has two doses besides control
    curve = report.results.dose_response.curves(report.results.frame)
    assert not curve.empty and set(curve["experiment"]) == {"bench"}


def test_placebo_null_is_not_flagged_and_tost_shows_equivalence(report):
    v = _verdict(report, "placebo", "x3")
    assert v["verdict"] == PLACEBO_NULL and not v["red_flag"] and v["equivalent"]
    assert report.red_flags == []
    eq = report.results.equivalence
    assert set(eq["experiment"]) == {"placebo"}
    primary = eq[eq["primary"]].iloc[0]
    assert primary["equivalent"] and primary["margin_low"] < 0 < primary["margin_high"]
    info = next(e for e in report.document["experiments"] if e["name"] == "placebo")
    assert info["verdict"] == PLACEBO_NULL and info["equivalent"] is True


def test_every_arm_outcome_and_checkpoint_has_an_effect(report, plan_dir):
    meta = plan_meta(plan_dir)
    effects = report.effects[report.effects["comparison"] == "vs_control"]
    steps = meta["training"]["checkpoint_steps"]
    assert 0 in steps  # the untrained baseline
    for experiment in meta["experiments"]:
        treated = len(experiment["arms"]) - 1
        rows = effects[effects["experiment"] == experiment["name"]]
        assert len(rows) == treated * len(experiment["outcomes"]) * len(steps)
        assert sorted(rows["step"].unique()) == steps
    assert effects[["estimate", "ci_low", "ci_high", "effect_size"]].notna().any().all()


def test_window_contrast_compares_equal_dose_arms(report):
    contrasts = report.effects[report.effects["comparison"] == "window_contrast"]
    assert set(contrasts["experiment"]) == {"canary"}
    assert set(zip(contrasts["arm"], contrasts["control_arm"])) == {("late", "early")}
    assert (contrasts["family"] == "exploratory").all() and (contrasts["step"] == FINAL_STEP).all()


def test_confirmatory_family_is_holm_over_primary_outcomes_at_the_final_step(report):
    effects = report.effects
    confirmatory = effects[effects["family"] == "confirmatory"]
    assert (confirmatory["primary"] & (confirmatory["step"] == FINAL_STEP) & (confirmatory["comparison"] == "vs_control")).all()
    assert len(confirmatory) == 5  # bench x2, x6; canary early, late; placebo x3
    testable = confirmatory.dropna(subset=["p"])
    np.testing.assert_allclose(testable["p_adj"], multipletests(testable["p"], method="holm")[1])


def test_achieved_mde_sits_next_to_the_planned_one(report, plan_dir):
    power = report.results.power
    planned = {(r["experiment"], r["arm"]): r["mde_effect_size"] for r in plan_meta(plan_dir)["power"]}
    primary = power.dropna(subset=["planned_mde_effect_size"])
    assert {(r.experiment, r.arm) for r in primary.itertuples()} == set(planned)
    for r in primary.itertuples():
        # every planned item was scored, so the achieved MDE is the planned one
        assert r.mde_effect_size == pytest.approx(planned[(r.experiment, r.arm)])


def test_report_writes_every_file(report):
    written = {p.name for p in report.path.iterdir()}
    figures = [f["file"] for f in report.document["figures"]]
    assert {"results.json", "effects.parquet", "report.md", "report.html"} <= written
    assert set(figures) <= written and set(report.document["files"]) == written
    for name in ("dose_response_bench.png", "effects_over_training_canary.png", "forest.png", "training_loss.png"):
        assert name in figures
        assert (report.path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in report.path.parent.iterdir() if p.name.startswith(".")]  # no temp dir left


def test_report_html_is_self_contained(report):
    page = (report.path / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(report.document["figures"])
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.IGNORECASE)
    assert links and all(link.startswith("data:") for link in links)
    assert "http" not in page.lower()
    assert "<style>" in page and "<link" not in page.lower() and "<script" not in page.lower()


def test_results_json_is_strict_json_with_the_documented_keys(report, plan_dir):
    results = _strict_json((report.path / "results.json").read_text(encoding="utf-8"))
    assert set(results) == set(RESULTS_KEYS)
    identity = results["identity"]
    assert identity["plan_hash"] == identity["run_plan_hash"] == plan_hash(plan_dir)
    assert identity["plan_name"] == "report-test" and identity["checkpoint_steps"] == [0, 20, FINAL_STEP]
    assert identity["corpus_fingerprint"] == plan_meta(plan_dir)["corpus"]["fingerprint"]
    assert identity["applied_log"]["agrees"] is True
    assert identity["applied_log"]["applied"] == identity["applied_log"]["planned"] > 0
    assert results["settings"]["multiplicity"] == "holm" and results["settings"]["equivalence_margin"] == 1.0
    assert len(results["effects"]) + len(results["contrasts"]) == len(report.effects)
    assert {e["name"] for e in results["experiments"]} == {"bench", "canary", "placebo"}
    assert all(e["summary"] and e["verdict"] for e in results["experiments"])
    assert len(results["verdicts"]) == 5 and results["dose_response"] and results["power"] and results["equivalence"]


def test_effects_parquet_is_the_effects_frame(report):
    stored = pd.read_parquet(report.path / "effects.parquet")
    pd.testing.assert_frame_equal(stored, report.effects, check_dtype=False)


def test_summaries_state_the_numbers_and_phrase_the_placebo_as_a_check(report):
    summaries = {e["name"]: e["summary"] for e in report.document["experiments"]}
    assert "Inserting each question 6 times" in summaries["bench"]
    assert "raised margin" in summaries["bench"] and "Holm-adjusted p" in summaries["bench"]
    assert "lowered loss" in summaries["canary"] and "inserted later" in summaries["canary"]
    assert "placebo (A/A)" in summaries["placebo"] and "As expected" in summaries["placebo"]
    assert "TOST" in summaries["placebo"] and "RED FLAG" not in " ".join(summaries.values())


def test_markdown_report_links_its_figures_and_names_the_plan(report, plan_dir):
    text = (report.path / "report.md").read_text(encoding="utf-8")
    for figure in report.document["figures"]:
        assert f"]({figure['file']})" in text
    assert "## Run and plan identity" in text and plan_hash(plan_dir) in text


def test_console_summary_lists_every_confirmatory_effect(report):
    text = report.console_summary()
    for experiment, arm in (("bench", "x2"), ("bench", "x6"), ("canary", "early"), ("canary", "late"), ("placebo", "x3")):
        assert re.search(rf"^{experiment}\s+{arm}\s", text, flags=re.MULTILINE), text
    assert "95% CI" in text and "p_adj" in text and str(report.path / "report.html") in text
    assert "applied log agrees" in text


def test_a_placebo_effect_is_a_red_flag(plan_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("designkit.analysis.report.render_figures", lambda results: [])
    report = analyze_run(make_run(tmp_path / "run", plan_dir, placebo_shift=3.0), tmp_path / "report")
    v = _verdict(report, "placebo", "x3")
    assert v["verdict"] == PLACEBO_EFFECT and v["red_flag"]
    assert report.red_flags and "placebo" in report.red_flags[0]
    summary = next(e["summary"] for e in report.document["experiments"] if e["name"] == "placebo")
    assert summary.count("RED FLAG") == 1 and "pipeline" in summary
    assert "RED FLAG" in report.console_summary()
    assert 'class="flag"' in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")


def test_an_experiment_without_control_arm_and_a_run_without_metrics_still_render(report, plan_dir):
    from designkit.analysis.render import render, results_document
    from designkit.analysis.results import NO_CONTROL, compute

    meta = plan_meta(plan_dir)
    meta["experiments"][0]["control_arm"] = None  # bench: nothing to compare against
    base = report.results
    scores = pd.concat([pd.read_parquet(p) for p in sorted((report.path.parent / "run" / "scores").glob("*.parquet"))])
    results = compute(meta, pd.read_parquet(plan_dir / "items.parquet"), scores, base.metrics.iloc[:0],
                      base.applied, base.identity, base.checkpoint_steps)
    assert not (results.effects["experiment"] == "bench").any()
    assert results.experiments[0]["verdict"] == NO_CONTROL and "no control arm" in results.paragraphs["bench"]
    assert "bench" in render("report.md", results, []) and "<html" in render("report.html", results, [])
    _strict_json(json.dumps(results_document(results, []), allow_nan=False))


def test_a_degenerate_outcome_does_not_sink_the_dose_response_table():
    from designkit.analysis import ArmSpec, DoseResponse, ExperimentSpec, OutcomeSpec

    arms = {"control": 0, "x1": 1, "x4": 4}
    rows = [{"experiment": "e", "arm": arm, "dose": dose, "inserted": dose > 0, "item_index": 10 * dose + i,
             "step": 1, "outcome": outcome, "value": value}
            for arm, dose in arms.items() for i in range(8)
            for outcome, value in (("flat", 0.0), ("moves", dose + 0.1 * i))]
    spec = ExperimentSpec(name="e", control_arm="control",
                          outcomes=(OutcomeSpec("moves", "continuous", primary=True), OutcomeSpec("flat", "continuous")),
                          arms=tuple(ArmSpec(a, d, d > 0) for a, d in arms.items()))
    table = DoseResponse.fit(pd.DataFrame(rows), [spec], alpha=0.05).table
    moves = table[(table["outcome"] == "moves") & (table["term"] == "log1p(dose)")]
    assert moves["estimate"].iloc[0] > 0 and moves["note"].iloc[0] == ""
    flat = table[table["outcome"] == "flat"]
    assert flat["estimate"].isna().all() or flat["note"].astype(bool).all()


def test_load_gives_the_results_the_report_was_rendered_from(report):
    import designkit.analysis

    results = designkit.analysis.load(report.path.parent / "run")
    pd.testing.assert_frame_equal(results.effects, report.effects)
    assert results.summary().splitlines()[0].startswith("report-test: 3 experiment(s)")


def test_conf_int_at_another_alpha_reruns_the_estimators(report):
    results = report.results
    at_95 = results.conf_int()
    pd.testing.assert_frame_equal(at_95[["ci_low", "ci_high"]], results.effects[["ci_low", "ci_high"]].reset_index(drop=True))
    at_99 = results.conf_int(0.01)
    assert list(at_99["experiment"]) == list(at_95["experiment"]) and list(at_99["arm"]) == list(at_95["arm"])
    finite = at_95["ci_low"].notna() & (at_95["ci_high"] > at_95["ci_low"])
    assert finite.sum() > 10
    # a 99% interval holds the 95% one and is wider; a bound at a rate's limit (a TPR of 0) stays put
    assert (at_99.loc[finite, "ci_low"] <= at_95.loc[finite, "ci_low"]).all()
    assert (at_99.loc[finite, "ci_high"] >= at_95.loc[finite, "ci_high"]).all()
    width_95 = at_95.loc[finite, "ci_high"] - at_95.loc[finite, "ci_low"]
    assert (at_99.loc[finite, "ci_high"] - at_99.loc[finite, "ci_low"] > width_95).all()
    np.testing.assert_allclose(at_99["estimate"], at_95["estimate"])


def test_plots_are_matplotlib_figures(report):
    from matplotlib.figure import Figure

    results = report.results
    for fig in (results.plot_dose_response("bench"), results.plot_effects_over_training("canary"),
                results.plot_forest(), results.plot_loss()):
        assert isinstance(fig, Figure) and fig.axes


def test_one_table_renderer_aligns_columns_by_dtype_in_both_formats(report):
    from designkit.analysis.render import table_view

    view = table_view(pd.DataFrame({"name": ["a"], "n": [3], "x": [0.5], "flag": [True], "p": [float("nan")]}),
                      ["name", "n", "x", "flag", "p"])
    assert view.numeric == [False, True, True, False, True] and view.rows == [["a", "3", "0.500", "yes", "n/a"]]
    markdown = (report.path / "report.md").read_text(encoding="utf-8")
    assert "| experiment | arm | dose | outcome | estimate | 95% CI | p_adj | verdict |\n|---|---|---:|---|---:|---:|---:|---|" in markdown
    page = (report.path / "report.html").read_text(encoding="utf-8")
    assert '<td class="num">x2</td>' not in page and '<td>x2</td>' in page and '<td class="num">2</td>' in page


def test_report_strings_follow_the_designs_alpha_and_adjustment(report, plan_dir):
    from designkit.analysis.render import render
    from designkit.analysis.results import compute

    meta = plan_meta(plan_dir)
    meta["design"]["analysis"].update(alpha=0.01, multiplicity="fdr_bh")
    base = report.results
    results = compute(meta, pd.read_parquet(plan_dir / "items.parquet"), _scores(report),
                      base.metrics, base.applied, base.identity, base.checkpoint_steps)
    text = render("report.md", results, [])
    assert "99% CI" in text and "95% CI" not in text
    assert "BH-adjusted (FDR) p" in results.paragraphs["bench"] and "Holm" not in " ".join(results.paragraphs.values())
    assert (results.effects["alpha"] == 0.01).all()


def _scores(report) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((report.path.parent / "run" / "scores").glob("*.parquet"))])


def test_an_outcome_with_its_own_estimator_gets_its_rows_verdict_sentence_and_section(report, plan_dir):
    from designkit.analysis.figures import render_figures
    from designkit.analysis.render import render
    from designkit.analysis.results import compute

    meta = plan_meta(plan_dir)
    canary = next(e for e in meta["experiments"] if e["name"] == "canary")
    next(o for o in canary["outcomes"] if o["primary"])["estimator"] = "ks_normal"  # loss is far from N(0, 1)
    base = report.results
    results = compute(meta, pd.read_parquet(plan_dir / "items.parquet"), _scores(report), base.metrics, base.applied,
                      base.identity, base.checkpoint_steps)
    rows = results.effects[(results.effects["experiment"] == "canary") & (results.effects["outcome"] == "loss")]
    assert set(rows["estimator"]) == {"ks_normal"} and set(rows["comparison"]) == {"vs_standard_normal"}
    verdicts = results.verdicts[results.verdicts["experiment"] == "canary"]
    assert set(verdicts["arm"]) == {"early", "late"} and (verdicts["verdict"] == EFFECT).all()
    assert "loss against N(0,1) gave D = " in results.paragraphs["canary"]
    figures = render_figures(results)
    assert "ks_normal_canary.png" in [f.name for f in figures if f.experiment == "canary"]
    text = render("report.md", results, figures)
    assert "## Distance from N(0, 1) (Kolmogorov-Smirnov)" in text and "](ks_normal_canary.png)" in text
