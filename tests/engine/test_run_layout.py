"""One RUN-dir layout: the engine writes and the analysis reads with the names of designkit.runfile."""

from __future__ import annotations

import itertools
import json

from designkit import runfile
from designkit.runfile import CHECKPOINT_FILES, RunDir, checkpoint_dir
from engine import applied_log, checkpoint, metrics, score


def test_engine_and_reader_agree_which_checkpoints_are_complete(tmp_path):
    (tmp_path / runfile.RUN_FILE).write_text(json.dumps({"format": runfile.FORMAT, "plan_hash": "0" * 64, "plan_path": "plan"}))
    subsets = [s for n in range(len(CHECKPOINT_FILES) + 1) for s in itertools.combinations(CHECKPOINT_FILES, n)]
    for step, files in enumerate(subsets):
        directory = checkpoint_dir(tmp_path, step)
        directory.mkdir(parents=True)
        for name in files:
            (directory / name).write_bytes(b"x")
    (tmp_path / runfile.CHECKPOINTS / "step-0000099").mkdir()  # not a step dir name
    complete = [len(subsets) - 1]
    assert checkpoint.checkpoint_steps(tmp_path) == complete
    assert list(RunDir.open(tmp_path).checkpoints()) == complete
    assert checkpoint.latest_checkpoint(tmp_path) == complete[0]


def test_engine_modules_use_the_run_layout_names():
    assert checkpoint.step_dir(".", 7) == checkpoint_dir(".", 7)
    assert (checkpoint.MODEL_FILE, checkpoint.STATE_FILE) == (runfile.MODEL_FILE, runfile.STATE_FILE)
    assert applied_log.SCHEMA.names == list(runfile.APPLIED_COLUMNS)
    assert (applied_log.APPLIED_FILE, applied_log.APPLIED_DIR) == (runfile.APPLIED_FILE, runfile.APPLIED_DIR)
    assert (metrics.METRICS_FILE, metrics.COLUMNS) == (runfile.METRICS_FILE, runfile.METRICS_COLUMNS)
    assert score.scores_path(".", 7) == runfile.scores_file(".", 7)
    assert score.KEY_COLUMNS == runfile.SCORE_KEY_COLUMNS
