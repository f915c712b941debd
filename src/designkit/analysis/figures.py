"""The report's figures, drawn from a `RunResults` (`RunResults.plot_*` returns them).

Matplotlib is imported inside the functions (the analysis package imports without it) and
used through `Figure` + the Agg canvas directly, never pyplot: no global backend state,
no GUI, nothing left open. Each function draws only; every number comes from the results.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from designkit.analysis.effects import CONFIRMATORY, VS_CONTROL
from designkit.analysis.over_training import WINDOW_CONTRAST
from designkit.analysis.results import RunResults

DPI = 100
INSERTED_COLOR = "#1f77b4"
NOT_INSERTED_COLOR = "#7f7f7f"
CONFIRMATORY_COLOR = "#111111"
RED_FLAG_COLOR = "#c0392b"
EXPLORATORY_COLOR = "#a0a0a0"
ARM_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class FigureFile:
    """One rendered figure: file name in the report dir, title, caption, PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes
    experiment: str | None = None
    """The experiment it belongs to, or None for run-wide figures."""


def render_figures(results: RunResults) -> list[FigureFile]:
    """Every figure of the report, in reading order: per experiment, then forest, loss, estimators' own."""
    figures = []
    level = results.options.ci_label
    final_step = max(results.checkpoint_steps) if results.checkpoint_steps else None
    for info in results.experiments:
        name = info["name"]
        if ((results.arm_means["experiment"] == name) & (results.arm_means["step"] == final_step)).any():
            figures.append(FigureFile(
                f"dose_response_{name}.png", f"{name}: outcome by dose",
                f"Mean outcome of each arm at step {final_step} with its {level} (hollow: never inserted); doses are "
                "evenly spaced; the line is the log(1 + dose) GLM fit where the experiment has two or more doses.",
                png_bytes(dose_response_figure(results, name)), name))
        if len(_vs_control(results.effects, name)):
            figures.append(FigureFile(
                f"effects_over_training_{name}.png", f"{name}: effect over training",
                f"Treated minus control at every checkpoint with its {level} band; step 0 is the untrained model, where "
                "arms differ only by chance.", png_bytes(effects_over_training_figure(results, name)), name))
    if len(results.effects):
        figures.append(FigureFile(
            "forest.png", "Forest plot of every effect at the final checkpoint",
            f"Estimates with {level}s in each outcome's own units. Black: confirmatory (primary outcome; red: a placebo "
            "arm flagged); grey: exploratory. Right: multiplicity-adjusted p.", png_bytes(forest_figure(results))))
    if len(results.metrics):
        figures.append(FigureFile(
            "training_loss.png", "Training loss",
            "Mean training loss per logging window; orange: share of trained tokens that were injected payload; "
            "dotted lines: checkpoints.", png_bytes(loss_figure(results.metrics, results.checkpoint_steps))))
    figures += results.figures
    for name, estimator in results.estimators.items():
        rows = results.effects[results.effects["estimator"] == name] if len(results.effects) else results.effects
        if len(rows):
            figures += estimator.figures(rows, results.frame, results.options)
    return figures


def _vs_control(effects: pd.DataFrame, experiment: str) -> pd.DataFrame:
    return effects[(effects["experiment"] == experiment) & (effects["comparison"] == VS_CONTROL)] if len(effects) else effects


def _outcomes(results: RunResults, experiment: str) -> list[str]:
    """The experiment's outcomes, primary first."""
    spec = next(s for s in results.specs if s.name == experiment)
    return [o.name for o in sorted(spec.outcomes, key=lambda o: not o.primary)]


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    # margins are set by hand (`_margins`): a layout engine costs seconds per figure
    return Figure(figsize=(width, height), dpi=DPI)


def _margins(fig, *, left: float = 0.75, right: float = 0.2, top: float = 0.6, bottom: float = 0.6,
             wspace: float = 0.55, hspace: float = 0.75, rows: int = 1, cols: int = 1) -> None:
    """Figure margins and gaps between panels in inches."""
    width, height = fig.get_size_inches()
    panel_w = (width - left - right - wspace * (cols - 1)) / cols
    panel_h = (height - top - bottom - hspace * (rows - 1)) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace / panel_w, hspace=hspace / panel_h)


def png_bytes(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # no Software/date metadata: the same tables give the same bytes
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def dose_response_figure(results: RunResults, experiment: str):
    """Panels per outcome: arm mean ± CI at the final step against log(1 + dose), with the GLM curve."""
    step = max(results.checkpoint_steps)
    means = results.arm_means[(results.arm_means["experiment"] == experiment) & (results.arm_means["step"] == step)]
    curves = results.dose_response.curves(results.frame)
    curves = curves[curves["experiment"] == experiment]
    title = f"{experiment} · step {step}"
    outcomes = [o for o in _outcomes(results, experiment) if (means["outcome"] == o).any()]
    rows, cols = _grid(len(outcomes))
    fig = new_figure(3.6 * cols, 3.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    _margins(fig, rows=rows, cols=cols, bottom=0.75, hspace=1.0)
    for ax, outcome in zip(axes, outcomes):
        of_outcome = means[means["outcome"] == outcome].sort_values(["dose", "arm"])
        arms = list(of_outcome["arm"])
        # distinct doses equally spaced (doses are geometric); arms sharing a dose (window arms) side by side
        doses = np.unique(of_outcome["dose"].to_numpy(float))
        shared = of_outcome.groupby("dose")["arm"].transform("size").to_numpy()
        offsets = of_outcome.groupby("dose").cumcount().to_numpy() - (shared - 1) / 2
        x = _dose_position(of_outcome["dose"].to_numpy(float), doses) + 0.32 * offsets
        for xi, r in zip(x, of_outcome.itertuples(index=False)):
            color = INSERTED_COLOR if r.inserted else NOT_INSERTED_COLOR
            # Wilson bounds can sit a rounding error inside the mean at 0% or 100%
            below, above = (0.0 if math.isnan(d) else max(0.0, d) for d in (r.mean - r.ci_low, r.ci_high - r.mean))
            ax.errorbar([xi], [r.mean], yerr=[[below], [above]], fmt="o", color=color,
                        markerfacecolor=color if r.inserted else "white", capsize=3, lw=1.2)
        curve = curves[curves["outcome"] == outcome] if len(curves) else curves
        if len(curve):
            ax.plot(_dose_position(curve["dose"].to_numpy(float), doses), curve["predicted"].to_numpy(float),
                    color=INSERTED_COLOR, lw=1, alpha=0.7, label="GLM fit")
        ax.set_xticks(x, [f"{a}\n({d})" for a, d in zip(arms, of_outcome["dose"])], fontsize=8)
        ax.set_xlim(-0.6, len(doses) - 0.4)
        ax.set_title(outcome, fontsize=10)
        ax.set_xlabel("arm (dose)", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(outcomes):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _dose_position(dose: np.ndarray, doses: np.ndarray) -> np.ndarray:
    """x of a dose when the distinct `doses` sit at 0, 1, 2, ...: piecewise linear in log(1 + dose)."""
    return np.interp(np.log1p(dose), np.log1p(doses), np.arange(len(doses), dtype=float))


def effects_over_training_figure(results: RunResults, experiment: str):
    """Panels per outcome: treated - control against step, one line and CI band per arm."""
    effects, title = _vs_control(results.effects, experiment), experiment
    outcomes = [o for o in _outcomes(results, experiment) if (effects["outcome"] == o).any()]
    rows, cols = _grid(len(outcomes))
    fig = new_figure(3.6 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    _margins(fig, rows=rows, cols=cols, left=0.85, wspace=0.75, hspace=0.85)
    arms = sorted(effects["arm"].unique(), key=lambda a: (int(effects.loc[effects["arm"] == a, "dose"].iloc[0]), a))
    colors = {a: ARM_COLORS[i % len(ARM_COLORS)] for i, a in enumerate(arms)}
    for ax, outcome in zip(axes, outcomes):
        of_outcome = effects[effects["outcome"] == outcome]
        for arm in arms:
            line = of_outcome[of_outcome["arm"] == arm].sort_values("step")
            if line.empty:
                continue
            steps = line["step"].to_numpy(float)
            ax.fill_between(steps, line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float),
                            color=colors[arm], alpha=0.18, lw=0)
            ax.plot(steps, line["estimate"].to_numpy(float), "o-", color=colors[arm], ms=3, lw=1.2,
                    label=f"{arm} (dose {int(line['dose'].iloc[0])})")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(outcome, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("treated − control", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    if len(outcomes):
        axes[0].legend(fontsize=7, frameon=False)
    for ax in axes[len(outcomes):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def forest_figure(results: RunResults):
    """Every effect at each experiment's final step, grouped by experiment and outcome.

    Outcomes have different units, so each (experiment, outcome) group gets its own x axis.
    Groups holding confirmatory effects come first.
    """
    effects, experiments = results.effects, [i["name"] for i in results.experiments]
    red_flags = {(v.experiment, v.arm) for v in results.verdicts.itertuples() if v.red_flag}
    final = effects[effects["step"] == effects.groupby("experiment")["step"].transform("max")]
    order = {name: i for i, name in enumerate(experiments)}
    groups = []
    for (experiment, outcome), group in final.groupby(["experiment", "outcome"], sort=False):
        confirmatory = bool((group["family"] == CONFIRMATORY).any())
        groups.append((not confirmatory, order.get(experiment, len(order)), experiment, outcome, group))
    groups.sort(key=lambda g: g[:2])
    heights = [0.3 + 0.25 * len(g[4]) for g in groups]
    gap, top, bottom = 0.55, 0.35, 0.35
    fig = new_figure(7.5, sum(heights) + gap * (len(groups) - 1) + top + bottom)
    axes = np.atleast_1d(fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})).ravel()
    fig.subplots_adjust(left=1.5 / 7.5, right=1 - 0.9 / 7.5, top=1 - top / fig.get_figheight(),
                        bottom=bottom / fig.get_figheight(), hspace=gap / float(np.mean(heights)))
    for ax, (_, _, experiment, outcome, group) in zip(axes, groups):
        group = group.sort_values(["comparison", "dose", "arm"])  # vs_control rows, then window contrasts
        y = np.arange(len(group))[::-1]
        labels = []
        for yi, r in zip(y, group.itertuples(index=False)):
            if r.family == CONFIRMATORY:
                color = RED_FLAG_COLOR if (r.experiment, r.arm) in red_flags else CONFIRMATORY_COLOR
            else:
                color = EXPLORATORY_COLOR
            if not (math.isnan(r.ci_low) or math.isnan(r.ci_high)):
                ax.plot([r.ci_low, r.ci_high], [yi, yi], color=color, lw=1.6)
            ax.plot([r.estimate], [yi], "s", color=color, ms=5)
            labels.append(f"{r.arm} − {r.control_arm}" if r.comparison == WINDOW_CONTRAST else r.arm)
            p_text = "p_adj n/a" if math.isnan(r.p_adj) else f"p_adj {r.p_adj:.2g}"
            ax.text(1.01, yi, p_text, transform=ax.get_yaxis_transform(), va="center", fontsize=7, color=color)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(-0.7, len(group) - 0.3)
        ax.tick_params(axis="x", labelsize=7)
        kind = "primary" if (group["family"] == CONFIRMATORY).any() else "exploratory"
        ax.set_title(f"{experiment} · {outcome} ({kind}, step {int(group['step'].iloc[0])})", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    return fig


def loss_figure(metrics: pd.DataFrame, checkpoint_steps: Sequence[int] = ()):
    """Training loss against step, the injected-token share on a second axis, checkpoints dotted."""
    fig = new_figure(7.0, 3.2)
    ax = fig.subplots()
    _margins(fig, left=0.8, right=0.8, top=0.25, bottom=0.55)
    steps = metrics["step"].to_numpy(float)
    ax.plot(steps, metrics["loss"].to_numpy(float), color=INSERTED_COLOR, lw=1.4, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    for step in checkpoint_steps:
        ax.axvline(step, color="grey", ls=":", lw=0.8)
    if "injected_share" in metrics.columns:
        share = ax.twinx()
        share.plot(steps, 100 * metrics["injected_share"].to_numpy(float), color="#ff7f0e", lw=1, alpha=0.8)
        share.set_ylabel("injected tokens (%)", color="#ff7f0e")
        share.tick_params(axis="y", colors="#ff7f0e")
        share.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return fig


__all__ = [
    "FigureFile",
    "dose_response_figure",
    "effects_over_training_figure",
    "forest_figure",
    "loss_figure",
    "render_figures",
]
