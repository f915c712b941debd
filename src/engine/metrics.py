"""Tracking: ``metrics.csv`` (always), TensorBoard/W&B loggers (optional), a progress bar.

Only rank 0 writes. ``metrics.csv`` is appended and flushed row by row; a resume first
drops the rows of steps it will train again, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from typing import Any

from designkit import atomic_files
from designkit.errors import InputError
from designkit.runfile import METRICS_COLUMNS as COLUMNS
from designkit.runfile import METRICS_FILE
LOGGERS = ("tensorboard", "wandb")


class MetricsCSV:
    def __init__(self, run_dir: Path, *, resume_step: int | None):
        self.path = Path(run_dir) / METRICS_FILE
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                kept = [row for row in csv.DictReader(fh) if int(row["step"]) <= resume_step]
            lines = [",".join(COLUMNS)] + [",".join(row[c] for c in COLUMNS) for row in kept]
            atomic_files.write_text(self.path, "\n".join(lines) + "\n")
        else:
            atomic_files.write_text(self.path, ",".join(COLUMNS) + "\n")
        self._fh = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow([_fmt(row[c]) for c in COLUMNS])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _fmt(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def make_logger(name: str | None, run_dir: Path, run_name: str):
    """A Lightning logger writing inside the run dir, or None."""
    if name is None:
        return None
    if name == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            raise InputError(None, "logger", "expected the tensorboard package for --logger tensorboard (pip install tensorboard)")
        from lightning.fabric.loggers import TensorBoardLogger

        return TensorBoardLogger(root_dir=Path(run_dir), name="tensorboard", version=0)
    if name == "wandb":
        if importlib.util.find_spec("wandb") is None:
            raise InputError(None, "logger", "expected the wandb package for --logger wandb (pip install wandb)")
        from lightning.pytorch.loggers import WandbLogger

        (Path(run_dir) / "wandb").mkdir(parents=True, exist_ok=True)
        return WandbLogger(project="designkit", name=run_name, save_dir=str(run_dir), dir=str(Path(run_dir) / "wandb"), resume="allow")
    raise InputError(None, "logger", f"expected one of {', '.join(LOGGERS)} or none, got {name!r}")


class Progress:
    """A tqdm bar on stderr: step, loss, tokens/s, ETA."""

    def __init__(self, enabled: bool, total: int, initial: int):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)

    def update(self, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        if self.bar is None:
            return
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
