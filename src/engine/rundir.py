"""The RUN dir's identity: ``run.json``, and the rules for starting, resuming or replacing a run.

``check`` is read-only and runs on rank 0 before any process is launched, so a refused
run dir exits with code 2 before anything is spawned or written. ``initialize`` writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

import designkit
from designkit import artefacts, atomic_files
from designkit.errors import InputError
from designkit.runfile import FORMAT, RUN_FILE, RunDir

Mode = Literal["fresh", "resume", "replace"]


def read_run_json(run_dir: Path) -> dict[str, Any]:
    return dict(RunDir.open(run_dir).meta)  # the one reader of run.json checks it


def recorded_corpus(run_dir: Path) -> Path | None:
    """The corpus directory a run was last trained with when not the plan's (``train --corpus``)."""
    if not (Path(run_dir) / RUN_FILE).is_file():
        return None
    return RunDir.open(run_dir).corpus_path


def check(run_dir: Path, plan_hash: str, *, resume: bool, force: bool) -> Mode:
    """How to treat ``run_dir``; InputError if it must be left alone."""
    run_dir = Path(run_dir)
    if resume and force:
        raise InputError(run_dir, None, "expected at most one of --resume and --force")
    atomic_files.check_output_dir(run_dir)  # a file, or a place that cannot be written: before any work
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "fresh"
    has_run = (run_dir / RUN_FILE).is_file()
    if resume:
        if not has_run:
            raise InputError(run_dir, None, "expected a run directory (with run.json) to resume, or an empty one")
        meta = read_run_json(run_dir)
        if meta.get("plan_hash") != plan_hash:
            raise InputError(
                run_dir / RUN_FILE, "plan_hash", f"expected a run of this plan ({plan_hash[:12]}…), the run dir was trained from {str(meta.get('plan_hash'))[:12]}…"
            )
        return "resume"
    if force:
        artefacts.check_output(run_dir, "run", force=True)  # only a designkit run (run.json) is replaced
        return "replace"
    raise InputError(run_dir, None, "expected an empty or new run directory (use --resume to continue this run or --force to replace it)")


def discard_unstarted(run_dir: Path, *, created: bool) -> None:
    """After a fresh run failed: remove what it wrote unless a checkpoint makes it resumable.

    A fresh run dir was new or empty, so everything in it is designkit's own.
    """
    from engine.checkpoint import latest_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or latest_checkpoint(run_dir) is not None:
        return
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def initialize(run_dir: Path, mode: Mode, plan, settings: dict[str, Any], resume_step: int | None) -> None:
    """Create (or reopen) the run dir and record what trains in it. Rank 0 only."""
    run_dir = Path(run_dir)
    if mode == "replace":
        for child in run_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    if mode == "resume":
        meta = read_run_json(run_dir)
        meta.setdefault("resumes", []).append({"from_step": resume_step, **settings})
    else:
        meta = {
            "format": FORMAT,
            "plan_hash": plan.hash,
            "plan_path": str(Path(plan.path).resolve()),
            "designkit_version": designkit.__version__,
            **settings,
            "resumes": [],
        }
    atomic_files.write_json(run_dir / RUN_FILE, meta)
