"""Figures of the interference report: the annotated matrix and the sub-runs' loss curves.

Matplotlib through ``Figure`` and the Agg canvas, as in ``designkit.analysis.figures``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

DPI = 100
CLIP = 3.0  # colour scale: estimate / margin, clipped to ±3 margins


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})  # same cells, same bytes
    return buffer.getvalue()


def heatmap_figure(cells: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], title: str) -> bytes:
    """Rows: whose primary outcome; columns: whose data. Colour: estimate in margins; text: estimate and verdict."""
    from matplotlib.figure import Figure

    grid = np.full((len(rows), len(columns)), np.nan)
    text = [["" for _ in columns] for _ in rows]
    lookup = {(r.experiment, r.source): r for r in cells.itertuples()}
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            cell = lookup.get((row, col))
            if cell is None:
                continue
            grid[i, j] = np.clip(cell.estimate / cell.margin, -CLIP, CLIP) if cell.margin > 0 else np.nan
            verdict = cell.verdict or ("own data" if cell.comparison == "own" else "")
            text[i][j] = f"{cell.estimate:+.3g}\n{verdict}"
    fig = Figure(figsize=(1.6 + 1.35 * len(columns), 1.0 + 0.85 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-CLIP, vmax=CLIP, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(columns)):
            if text[i][j]:
                bold = "effect" in text[i][j].split("\n")[1]
                dark = np.isfinite(grid[i, j]) and abs(grid[i, j]) > 0.6 * CLIP  # white text on saturated cells
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8, fontweight="bold" if bold else "normal",
                        color="white" if dark else "black")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("data switched on (column)")
    ax.set_ylabel("primary outcome of (row)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="estimate / margin")
    return _png(fig)


def loss_figure(metrics: Mapping[str, pd.DataFrame]) -> bytes:
    """Training loss of every sub-run over its steps."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for name, frame in metrics.items():
        if len(frame):
            ax.plot(frame["step"], frame["loss"], label=name, linewidth=1.2)
    ax.set_xlabel("sub-run step")
    ax.set_ylabel("training loss")
    ax.set_title("loss of the sub-runs", fontsize=10)
    if len(metrics) <= 20:
        ax.legend(fontsize=7, ncol=2)
    return _png(fig)
