"""Read side of a RUN dir (docs/formats.md, format ``designkit-run/3``), without torch.

The engine writes run dirs; the analysis only reads them. This module is that reader: it
checks ``run.json`` once and hands out the checkpoints, metrics, applied log and scores as
plain pandas frames. It never imports the engine, so a planning or analysis host without
a GPU stack can read a run copied from the cluster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from designkit.errors import InputError, quote

# The RUN dir's names and columns (docs/formats.md, "RUN dir"): the engine writes with these,
# the analysis reads with these; nobody spells them out again.
FORMAT = "designkit-run/3"
RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"
MODEL_FILE = "lit_model.pth"
MODEL_CONFIG_FILE = "model_config.yaml"
STATE_FILE = "training_state.pt"
CHECKPOINT_FILES = (MODEL_FILE, MODEL_CONFIG_FILE, STATE_FILE)
"""What makes ``checkpoints/step-XXXXXXXX/`` complete: weights, model config and training
state. The engine fills a step dir under a temporary name and renames it into place, so a
dir holding all three is complete; scoring needs the first two, resuming all three."""
METRICS_FILE = "metrics.csv"
APPLIED_FILE = "applied.parquet"
APPLIED_DIR = "applied"
"""The chunks ``applied.parquet`` is merged from, written during training."""
SCORES = "scores"
INLOOP_FILE = "inloop.parquet"
"""``scores/inloop.parquet``: the rows of in-loop evaluation (the checkpoint scores' schema)."""
CONTROLLER_FILE = "controller.csv"
"""Every controller decision (``designkit.controllers.CONTROLLER_COLUMNS``)."""

METRICS_COLUMNS = ("step", "tokens", "loss", "lr", "tokens_per_s", "injected_share")
APPLIED_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("rank", pa.int32()),
        ("global_seq", pa.int64()),
        ("offset", pa.int32()),
        ("n_tokens", pa.int32()),
        ("item_index", pa.int32()),
        ("item_id", pa.string()),
        ("payload_index", pa.int32()),
        ("edit", pa.string()),
        ("checksum", pa.int64()),
    ]
)
"""``checksum``: of the edited span's tokens read back from the trained batch (insert, remove)
or of the noise parameters handed to the embedding hook (noise); see ``designkit.provenance``."""
APPLIED_COLUMNS = tuple(APPLIED_SCHEMA.names)
SCORE_KEY_SCHEMA = pa.schema(
    [
        ("item_index", pa.int32()),
        ("item_id", pa.string()),
        ("instance", pa.int32()),
        ("experiment", pa.string()),
        ("probe", pa.string()),
        ("step", pa.int64()),
    ]
)
"""The columns every scores file starts with; the probes of the plan add theirs after them."""
SCORE_KEY_COLUMNS = tuple(SCORE_KEY_SCHEMA.names)

_STEP_DIR = re.compile(r"^step-(\d{8})$")
_SCORES_FILE = re.compile(r"^step-(\d{8})\.parquet$")


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """``RUN/checkpoints/step-XXXXXXXX``."""
    return Path(run_dir) / CHECKPOINTS / f"step-{int(step):08d}"


def scores_file(run_dir: str | Path, step: int) -> Path:
    """``RUN/scores/step-XXXXXXXX.parquet``."""
    return Path(run_dir) / SCORES / f"step-{int(step):08d}.parquet"


def inloop_file(run_dir: str | Path) -> Path:
    """``RUN/scores/inloop.parquet``."""
    return Path(run_dir) / SCORES / INLOOP_FILE


def controller_log(run_dir: str | Path) -> pd.DataFrame | None:
    """``controller.csv`` as a frame, or None when the run has no controller."""
    from designkit.controllers import CONTROLLER_COLUMNS

    file = Path(run_dir) / CONTROLLER_FILE
    if not file.is_file():
        return None
    try:
        frame = pd.read_csv(file, dtype={"experiment": str, "item_id": str})
    except (OSError, ValueError) as exc:
        raise InputError(file, None, f"expected a CSV file ({exc})") from None
    missing = [c for c in CONTROLLER_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(file, ", ".join(missing), f"expected columns {list(CONTROLLER_COLUMNS)}")
    return frame


def is_complete_checkpoint(directory: str | Path) -> bool:
    """The one definition of a complete checkpoint: a step dir holding every ``CHECKPOINT_FILES``."""
    directory = Path(directory)
    return directory.is_dir() and all((directory / name).is_file() for name in CHECKPOINT_FILES)


def complete_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """``{step: checkpoints/step-XXXXXXXX}`` of every complete checkpoint, by step."""
    root = Path(run_dir) / CHECKPOINTS
    found = {}
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and is_complete_checkpoint(child):
                found[int(match.group(1))] = child
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class RunDir:
    """A RUN dir whose ``run.json`` was read and checked; the other files are read on demand."""

    path: Path
    meta: dict[str, Any]
    """``run.json`` as written by ``designkit train``."""
    plan_hash: str
    """The hash of the plan the run was trained from (``run.json`` ``plan_hash``)."""
    plan_path: Path
    """The plan dir, resolved against the run dir when ``run.json`` records a relative path."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, run_dir: str | Path) -> RunDir:
        """Read ``run.json``; InputError unless it is a ``designkit-run/3`` file naming its plan."""
        path = Path(run_dir)
        run_file = path / RUN_FILE
        if not run_file.is_file():
            raise InputError(path, RUN_FILE, "expected a run directory (made by designkit train)")
        try:
            meta = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(run_file, None, f"expected a readable JSON file ({exc})") from None
        if not isinstance(meta, dict):
            raise InputError(run_file, None, f"expected a JSON object, got {type(meta).__name__}")
        if meta.get("format") != FORMAT:
            raise InputError(run_file, "format", f"expected {FORMAT!r}, got {quote(meta.get('format'))}")
        for name in ("plan_hash", "plan_path"):
            if not isinstance(meta.get(name), str) or not meta[name]:
                raise InputError(run_file, name, f"expected a non-empty string, got {quote(meta.get(name))}")
        plan_path = Path(meta["plan_path"])
        if not plan_path.is_absolute():
            plan_path = path / plan_path
        return cls(path=path, meta=meta, plan_hash=meta["plan_hash"], plan_path=plan_path)

    @property
    def corpus_path(self) -> Path | None:
        """The corpus directory the run was last trained with when not the plan's (``train --corpus``), else None."""
        resumes = self.meta.get("resumes") or []
        latest = resumes[-1] if resumes and isinstance(resumes[-1], dict) else self.meta
        value = latest.get("corpus_path")
        return Path(value) if isinstance(value, str) and value else None

    def plan(self):
        """The plan the run was trained from (every file's hash verified); InputError unless
        its hash is the one ``run.json`` recorded. It reads the corpus where the run did."""
        from designkit.planning.planfile import PLAN_FILE, Plan

        if not (self.plan_path / PLAN_FILE).is_file():
            raise InputError(self.path / RUN_FILE, "plan_path", f"expected the plan the run was trained from at {self.plan_path}, found no {PLAN_FILE}")
        plan = Plan.open(self.plan_path)
        if plan.hash != self.plan_hash:
            raise InputError(
                self.path / RUN_FILE, "plan_hash",
                f"expected the plan at {self.plan_path} to have hash {self.plan_hash[:12]}… as recorded, got {plan.hash[:12]}… "
                "(the plan was re-made or replaced after training)",
            )
        if self.corpus_path is not None:
            plan.use_corpus(self.corpus_path)
        return plan

    # checkpoints
    def checkpoints(self) -> dict[int, Path]:
        """``{step: checkpoints/step-XXXXXXXX}`` of every complete checkpoint (``is_complete_checkpoint``), by step."""
        return complete_checkpoints(self.path)

    # metrics
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv`` (step, tokens, loss, lr, tokens_per_s, injected_share); empty if absent."""
        file = self.path / METRICS_FILE
        if not file.is_file():
            return pd.DataFrame({c: pd.Series(dtype=float) for c in METRICS_COLUMNS})
        try:
            frame = pd.read_csv(file)
        except (OSError, ValueError) as exc:
            raise InputError(file, None, f"expected a CSV file ({exc})") from None
        missing = [c for c in METRICS_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(file, ", ".join(missing), f"expected columns {list(METRICS_COLUMNS)}")
        return frame

    # applied log
    def applied(self) -> pd.DataFrame:
        """``applied.parquet``: every edit the run applied with its checksum, ``edit`` and ``item_id`` as plain strings."""
        if "applied" not in self._cache:
            file = self.path / APPLIED_FILE
            if not file.is_file():
                raise InputError(
                    self.path, APPLIED_FILE,
                    "expected the applied log, written when training finishes (finish the run with designkit train PLAN RUN --resume)",
                )
            frame = _read_parquet(file)
            missing = [c for c in APPLIED_COLUMNS if c not in frame.columns]
            if missing:
                raise InputError(file, ", ".join(missing), f"expected columns {list(APPLIED_COLUMNS)}")
            for name in ("edit", "item_id"):
                frame[name] = frame[name].astype(str)
            self._cache["applied"] = frame
        return self._cache["applied"]

    # scores
    def score_files(self) -> dict[int, Path]:
        """``{step: scores/step-XXXXXXXX.parquet}`` by step."""
        root = self.path / SCORES
        found = {}
        if root.is_dir():
            for child in root.iterdir():
                match = _SCORES_FILE.match(child.name)
                if match and child.is_file():
                    found[int(match.group(1))] = child
        return dict(sorted(found.items()))

    def scores(self, steps: list[int] | None = None) -> pd.DataFrame:
        """The scores of ``steps`` (default: every scored step) as one long table, by step.

        Nullable ints and bools stay nullable (pandas ``Int32``/``boolean``), floats keep NaN,
        as in ``engine.score.read_scores``. Each file's ``step`` column must match its name.
        """
        files = self.score_files()
        wanted = list(files) if steps is None else sorted(steps)
        absent = [s for s in wanted if s not in files]
        if absent or not wanted:
            raise InputError(
                self.path, SCORES,
                f"expected scores/step-XXXXXXXX.parquet for steps {absent or 'of every checkpoint'} (run designkit score {self.path})",
            )
        parts = []
        for step in wanted:
            frame = _read_parquet(files[step])
            missing = [c for c in SCORE_KEY_COLUMNS if c not in frame.columns]
            if missing:
                raise InputError(files[step], ", ".join(missing), f"expected score columns {list(SCORE_KEY_COLUMNS)}")
            if len(frame) and not (frame["step"].astype("int64") == step).all():
                raise InputError(files[step], "step", f"expected every row to have step {step} as the file name says")
            parts.append(frame)
        frame = pd.concat(parts, ignore_index=True)
        frame["item_index"] = frame["item_index"].astype("int32")
        frame["instance"] = frame["instance"].astype("int32")
        frame["step"] = frame["step"].astype("int64")
        for name in ("item_id", "experiment", "probe"):
            frame[name] = frame[name].astype(str)
        return frame

    def inloop_scores(self) -> pd.DataFrame | None:
        """``scores/inloop.parquet``: in-loop probe rows, the checkpoint scores' columns, every
        evaluated step; None if the run evaluated nothing in the loop."""
        file = inloop_file(self.path)
        if not file.is_file():
            return None
        frame = _read_parquet(file)
        missing = [c for c in SCORE_KEY_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(file, ", ".join(missing), f"expected score columns {list(SCORE_KEY_COLUMNS)}")
        frame["item_index"] = frame["item_index"].astype("int32")
        frame["step"] = frame["step"].astype("int64")
        for name in ("item_id", "experiment", "probe"):
            frame[name] = frame[name].astype(str)
        return frame

    def controller(self) -> pd.DataFrame | None:
        """``controller.csv``: every controller decision; None if the run had no controller."""
        return controller_log(self.path)


_NULLABLE = {pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}


def _read_parquet(file: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(file, None, f"expected a readable parquet file ({exc})") from None
    return table.to_pandas(types_mapper=_NULLABLE.get)


__all__ = [
    "APPLIED_COLUMNS", "APPLIED_DIR", "APPLIED_FILE", "APPLIED_SCHEMA", "CHECKPOINTS", "CHECKPOINT_FILES", "CONTROLLER_FILE", "FORMAT",
    "INLOOP_FILE", "METRICS_COLUMNS", "controller_log", "inloop_file",
    "METRICS_FILE", "MODEL_CONFIG_FILE", "MODEL_FILE", "RUN_FILE", "SCORES", "SCORE_KEY_COLUMNS", "SCORE_KEY_SCHEMA", "STATE_FILE", "RunDir",
    "checkpoint_dir", "complete_checkpoints", "is_complete_checkpoint", "scores_file",
]
