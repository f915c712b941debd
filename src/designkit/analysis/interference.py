"""Interference tests: does experiment j's data move experiment i's outcome?

Input is one long frame of item scores over the sub-runs of an interference design
(``designkit.planning.interference``): ``run, replicate, experiment, outcome, item_index,
value`` plus, per run, which experiments were switched on. Every experiment's items are
scored in every run, so comparisons are paired within items across runs.

- **one-at-a-time** (``one_at_a_time_cells``): Δᵢⱼ = Yᵢ(j alone) − Yᵢ(none), the mean over
  experiment i's items of the paired difference; and Yᵢ(all) − Yᵢ(i alone), what all the
  others together do to i. With one replicate the CI is the paired t interval (item-level
  noise only). With replicates, each replicate's paired mean is combined by a random-effects
  meta-analysis (statsmodels ``combine_effects``: Paule-Mandel, t with k - 1 df), whose
  between-replicate variance is the run-level noise.
- **factorial** (``factorial_cells``): for each outcome, OLS of the item's score (centred
  within item and replicate, i.e. item fixed effects) on the on/off factors coded ±½ and
  the estimable two-way interactions, with cluster-robust errors by item (run-level noise
  is not in these errors; replicates add rows, not a run-level variance). A factor's
  coefficient is its average on-minus-off effect; an interaction's is how much one
  factor's effect changes when the other is on. Aliased interactions are fitted once
  and named with their aliases.

Every cross effect (j ≠ i), "others" contrast and interaction of a primary outcome gets a
Holm-adjusted test (statsmodels ``multipletests``) and a TOST equivalence at experiment i's
margin. Verdicts: ``negligible`` when equivalence holds (the 90% CI lies inside ±margin;
non-significance alone is never enough), else ``effect`` when the Holm-adjusted test
rejects, else ``inconclusive``. Diagonal cells (an experiment's own data on its own
outcome) are estimated but not tested. Secondary outcomes are estimated and tested
(their own Holm family) without a verdict: the declared margin is in primary-outcome units.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import DescrStatsW

VERDICTS = ("effect", "negligible", "inconclusive")
TESTED = ("cross", "others", "interaction")
FRAME_COLUMNS = ("run", "replicate", "experiment", "outcome", "item_index", "value")


@dataclass(frozen=True)
class OutcomeInfo:
    experiment: str
    outcome: str
    type: str
    primary: bool


@dataclass(frozen=True)
class Cell:
    """One estimate of the interference matrix."""

    experiment: str
    """Whose outcome moves (row i)."""
    outcome: str
    primary: bool
    source: str
    """What moves it: a factor (column j), ``others`` (all but i), or ``j:k`` (an interaction)."""
    comparison: str
    """``cross`` (j ≠ i), ``own`` (j = i, not tested), ``others`` or ``interaction``."""
    estimate: float
    ci_low: float
    ci_high: float
    se: float
    p: float
    margin: float
    p_tost: float
    """The larger one-sided p of the TOST at ±margin."""
    n_items: int
    n_replicates: int
    method: str
    aliases: str = ""
    """Factorial: the interactions aliased with this one, which its estimate includes."""
    p_adj: float = float("nan")
    family: str = ""
    verdict: str = ""


def _tost_from_t(estimate: float, se: float, margin: float, df: float) -> float:
    """TOST of H0 |effect| >= margin from an estimate, its standard error and degrees of freedom."""
    if not (se > 0 and np.isfinite(se)):
        return float("nan")
    lower, upper = (estimate + margin) / se, (estimate - margin) / se
    if np.isfinite(df):
        p_lower, p_upper = stats.t.sf(lower, df), stats.t.cdf(upper, df)
    else:
        p_lower, p_upper = stats.norm.sf(lower), stats.norm.cdf(upper)  # H0: effect <= -margin; H0: effect >= +margin
    return float(max(p_lower, p_upper))


def paired_difference(with_j: pd.Series, without: pd.Series, margin: float, alpha: float) -> dict:
    """Mean paired difference (indexed by item) with a t CI, test and TOST, via statsmodels."""
    diff = (with_j - without).dropna()
    n = len(diff)
    if n < 2 or np.ptp(diff.to_numpy()) == 0:
        est = float(diff.mean()) if n else float("nan")
        exact = n >= 2  # identical differences: no sampling variation left
        p = 0.0 if exact and est != 0 else (1.0 if exact else float("nan"))
        tost = 0.0 if exact and abs(est) < margin else (1.0 if exact else float("nan"))
        return dict(estimate=est, ci_low=est, ci_high=est, se=0.0, p=p, p_tost=tost, n_items=n, method="paired_t")
    d = DescrStatsW(diff.to_numpy(float))
    low, high = d.tconfint_mean(alpha=alpha)
    _, p, _ = d.ttest_mean(0.0)
    p_tost, _, _ = d.ttost_mean(-margin, margin)
    return dict(estimate=float(d.mean), ci_low=float(low), ci_high=float(high), se=float(d.std_mean), p=float(p),
                p_tost=float(p_tost), n_items=n, method="paired_t")  # fmt: skip


def replicated_difference(pairs: Sequence[tuple[pd.Series, pd.Series]], margin: float, alpha: float) -> dict:
    """Paired differences of several replicates, combined with run-level (random-effects) variance."""
    if len(pairs) == 1:
        return paired_difference(*pairs[0], margin, alpha)
    means, variances, n_items = [], [], []
    for with_j, without in pairs:
        diff = (with_j - without).dropna()
        means.append(float(diff.mean()))
        variances.append(max(float(diff.var(ddof=1)) / len(diff), 1e-300))
        n_items.append(len(diff))
    # Paule-Mandel between-replicate variance (truncated at 0, unlike statsmodels' "dl"),
    # and t quantiles with k - 1 degrees of freedom: few replicates give wide intervals
    result = combine_effects(np.array(means), np.array(variances), method_re="iterated", use_t=True)
    est, se, df = float(result.mean_effect_re), float(result.sd_eff_w_re), len(pairs) - 1
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * stats.t.sf(abs(est) / se, df)) if se > 0 else float("nan")
    return dict(estimate=est, ci_low=est - half, ci_high=est + half, se=se, p=p,
                p_tost=_tost_from_t(est, se, margin, df), n_items=int(min(n_items)), method="paired_random_effects_pm_t")  # fmt: skip


def _by_run(frame: pd.DataFrame) -> dict[tuple[str, str, str], pd.Series]:
    """Item scores of each (run, experiment, outcome), indexed by item."""
    return {key: rows.set_index("item_index")["value"].astype(float) for key, rows in frame.groupby(["run", "experiment", "outcome"], sort=False)}


def one_at_a_time_cells(
    frame: pd.DataFrame,
    runs: Sequence[Mapping],
    factors: Sequence[str],
    outcomes: Sequence[OutcomeInfo],
    margins: Mapping[str, float],
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The matrix Δᵢⱼ, the diagonal, and Yᵢ(all) − Yᵢ(i alone), tested and given verdicts."""
    by_replicate: dict[int, dict[frozenset, str]] = {}
    for run in runs:
        by_replicate.setdefault(int(run["replicate"]), {})[frozenset(run["on"])] = run["name"]
    replicates = sorted(by_replicate)
    scores = _by_run(frame)
    empty = pd.Series(dtype=float)
    cells = []
    for info in outcomes:
        margin = float(margins[info.experiment])

        def contrast(on: frozenset, off: frozenset) -> dict:
            pairs = [(scores.get((by_replicate[r][on], info.experiment, info.outcome), empty),
                      scores.get((by_replicate[r][off], info.experiment, info.outcome), empty)) for r in replicates]  # fmt: skip
            return replicated_difference(pairs, margin, 2 * alpha)  # a (1 - 2 alpha) CI matches the TOST

        for j in factors:
            stats_ = contrast(frozenset([j]), frozenset())
            comparison = "own" if j == info.experiment else "cross"
            cells.append(Cell(info.experiment, info.outcome, info.primary, j, comparison, margin=margin,
                              n_replicates=len(replicates), **stats_))  # fmt: skip
        if info.experiment in factors and len(factors) > 1:
            stats_ = contrast(frozenset(factors), frozenset([info.experiment]))
            cells.append(Cell(info.experiment, info.outcome, info.primary, "others", "others", margin=margin,
                              n_replicates=len(replicates), **stats_))  # fmt: skip
    return judge(cells, alpha)


def estimable_interactions(matrix: np.ndarray, factors: Sequence[str]) -> list[tuple[tuple[int, int], list[str]]]:
    """Two-way interactions to fit, one per alias chain, each with the interactions aliased to it.

    An interaction whose column equals (up to sign) a main effect's or an already chosen
    interaction's cannot be separated from it; it is listed as an alias instead.
    """
    levels = np.asarray(matrix, dtype=float)
    columns = [levels[:, j] for j in range(levels.shape[1])]
    chosen: list[tuple[tuple[int, int], list[str]]] = []
    chosen_columns: list[np.ndarray] = []
    for a, b in itertools.combinations(range(levels.shape[1]), 2):
        col = levels[:, a] * levels[:, b]
        if any(np.array_equal(col, c) or np.array_equal(col, -c) for c in columns):
            continue  # aliased with a main effect (resolution III): not estimable
        for k, c in enumerate(chosen_columns):
            if np.array_equal(col, c) or np.array_equal(col, -c):
                chosen[k][1].append(f"{factors[a]}:{factors[b]}")
                break
        else:
            chosen.append(((a, b), []))
            chosen_columns.append(col)
    return chosen


def factorial_cells(
    frame: pd.DataFrame,
    runs: Sequence[Mapping],
    factors: Sequence[str],
    outcomes: Sequence[OutcomeInfo],
    margins: Mapping[str, float],
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Main effects and two-way interactions of every factor on every outcome, tested."""
    import statsmodels.api as sm

    matrix = np.array([[1 if f in run["on"] else -1 for f in factors] for run in runs])
    interactions = estimable_interactions(matrix, factors)
    design = pd.DataFrame(matrix / 2.0, columns=list(factors))  # ±½: a coefficient is an on-minus-off effect
    for (a, b), _ in interactions:
        # ±¼: the coefficient is how much a's effect grows when b is on (a difference of differences)
        design[f"{factors[a]}:{factors[b]}"] = design[factors[a]] * design[factors[b]]
    design.insert(0, "run", [run["name"] for run in runs])
    cells = []
    for info in outcomes:
        margin = float(margins[info.experiment])
        rows = frame[(frame["experiment"] == info.experiment) & (frame["outcome"] == info.outcome)].dropna(subset=["value"])
        data = rows.merge(design, on="run", how="inner")
        # item (and replicate) fixed effects: centre every item's scores across the runs
        data["y"] = data["value"] - data.groupby(["item_index", "replicate"])["value"].transform("mean")
        terms = [c for c in design.columns if c != "run"]
        x = data[terms] - data.groupby(["item_index", "replicate"])[terms].transform("mean")
        groups = pd.factorize(data["item_index"])[0]
        fit = sm.OLS(data["y"].to_numpy(), x.to_numpy()).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        ci = fit.conf_int(alpha=2 * alpha)
        df = int(len(np.unique(groups))) - 1
        aliases = {f"{factors[a]}:{factors[b]}": ", ".join(al) for (a, b), al in interactions}
        for k, term in enumerate(terms):
            est, se = float(fit.params[k]), float(fit.bse[k])
            if ":" in term:
                comparison = "interaction"
            else:
                comparison = "own" if term == info.experiment else "cross"
            cells.append(Cell(info.experiment, info.outcome, info.primary, term, comparison, est, float(ci[k, 0]), float(ci[k, 1]), se,
                              float(fit.pvalues[k]), margin, _tost_from_t(est, se, margin, df), int(data["item_index"].nunique()),
                              int(data["replicate"].nunique()), "ols_item_fe_cluster_item", aliases.get(term, "")))  # fmt: skip
    return judge(cells, alpha)


def judge(cells: Sequence[Cell], alpha: float) -> pd.DataFrame:
    """Holm-adjust each family's tests and give primary-outcome cells their verdicts."""
    table = pd.DataFrame([asdict(c) for c in cells])
    if table.empty:
        return table
    tested = table["comparison"].isin(TESTED)
    table["family"] = np.where(~tested, "not tested", np.where(table["primary"], "primary", "secondary"))
    for family in ("primary", "secondary"):
        mask = (table["family"] == family) & table["p"].notna()
        if mask.any():
            table.loc[mask, "p_adj"] = multipletests(table.loc[mask, "p"].to_numpy(), alpha=alpha, method="holm")[1]
    verdict = np.where(table["p_tost"] < alpha, "negligible", np.where(table["p_adj"] < alpha, "effect", "inconclusive"))
    table["verdict"] = np.where(table["family"] == "primary", verdict, "")
    return table


def plain_summary(cells: pd.DataFrame, design: str, n_replicates: int) -> str:
    """One paragraph a reader without the statistics can act on."""
    tested = cells[cells["family"] == "primary"]
    if tested.empty:
        return "No cross effect could be tested: the design switches on fewer than two experiments."
    counts = tested["verdict"].value_counts()
    n_effect, n_negl, n_inc = (int(counts.get(v, 0)) for v in VERDICTS)
    parts = [
        f"Of {len(tested)} tested cross effects on the experiments' primary outcomes, "
        f"{n_effect} show interference (Holm-adjusted p < α), {n_negl} are negligible (inside the declared margin by "
        f"an equivalence test) and {n_inc} are inconclusive (neither: more items or replicates would decide)."
    ]
    effects = tested[tested["verdict"] == "effect"].assign(size=lambda t: (t["estimate"] / t["margin"]).abs()).sort_values("size", ascending=False)
    for _, row in effects.head(3).iterrows():
        what = {"others": "all other experiments together", "interaction": f"the interaction {row['source']}"}.get(row["comparison"], f"{row['source']}'s data")
        parts.append(f"{what} moved {row['experiment']}'s {row['outcome']} by {row['estimate']:+.4g} "
                     f"(CI {row['ci_low']:+.4g} to {row['ci_high']:+.4g}; margin ±{row['margin']:g}).")  # fmt: skip
    if n_effect == 0 and n_inc == 0:
        parts.append("The experiments can be read as if each had run alone.")
    elif n_effect:
        parts.append("Effects estimated in the combined run for these experiments include the other experiments' influence.")
    if n_replicates < 2:
        parts.append("With one replicate per run, the intervals reflect item-level noise only; run-to-run noise needs --replicates.")
    if design == "factorial":
        parts.append("Factorial interactions include the interactions aliased with them (see the alias table).")
    return " ".join(parts)
