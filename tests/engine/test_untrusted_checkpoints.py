"""No code runs from a checkpoint: every path that reads a ``.pth``/``.pt`` refuses pickled code.

A ``lit_model.pth`` whose pickle would run a shell command is put into each path that loads
weights: scoring, analysis (which scores), ``train --resume`` and continual pretraining
(``run.model: {checkpoint: DIR}``). Each must exit 2 with one line naming the file, never
suggest ``weights_only=False``, and never run the command. Truncated and garbage weight
files get the same one clean line.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from training_runs import make_engine_plan, make_trained_run

from designkit.cli import main as designkit_main
from engine import checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


class _RunsShellCommand:
    """Unpickling this object runs ``touch MARKER``: the attack of issue 7."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def write_malicious_weights(path: Path, marker: Path) -> None:
    """A real state dict (so a loader that runs the code would go on) plus the payload."""
    state = torch.load(path, weights_only=True)
    state["zzz_payload"] = _RunsShellCommand(marker)
    torch.save(state, path)


@pytest.fixture(scope="module")
def engine_plan(tmp_path_factory, tiny_corpus):
    return make_engine_plan(tmp_path_factory, tiny_corpus)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, engine_plan):
    return make_trained_run(tmp_path_factory, engine_plan)


def _run_with_only_final_checkpoint(trained_run: Path, to: Path) -> Path:
    """A copy of the trained run whose only checkpoint is step 40 and that has no scores yet."""
    shutil.copytree(trained_run, to, ignore=shutil.ignore_patterns("scores"))
    for child in (to / "checkpoints").iterdir():
        if child.name != "step-00000040":
            shutil.rmtree(child)
    return to


def _refused(capfd, argv: list[str], file: Path, marker: Path) -> str:
    code = designkit_main(argv)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert str(file) in lines[0]
    assert "weights_only" not in err and "Traceback" not in err
    assert not marker.exists(), "the checkpoint's pickle ran code"
    return lines[0]


def test_scoring_never_runs_code_from_a_checkpoint(tmp_path, trained_run, capfd):
    run = _run_with_only_final_checkpoint(trained_run, tmp_path / "run")
    weights = run / "checkpoints" / "step-00000040" / "lit_model.pth"
    marker = tmp_path / "pwned"
    write_malicious_weights(weights, marker)
    _refused(capfd, ["score", str(run), "--quiet"], weights, marker)
    assert not (run / "scores").exists() or not any((run / "scores").iterdir())


def test_analyze_never_runs_code_from_a_checkpoint(tmp_path, trained_run, capfd):
    run = _run_with_only_final_checkpoint(trained_run, tmp_path / "run")
    weights = run / "checkpoints" / "step-00000040" / "lit_model.pth"
    marker = tmp_path / "pwned"
    write_malicious_weights(weights, marker)
    _refused(capfd, ["analyze", str(run), "--out", str(tmp_path / "report"), "--quiet"], weights, marker)
    assert not (tmp_path / "report").exists()


def test_resume_never_runs_code_from_a_checkpoint(tmp_path, trained_run, engine_plan, capfd):
    run = _run_with_only_final_checkpoint(trained_run, tmp_path / "run")
    weights = run / "checkpoints" / "step-00000040" / "lit_model.pth"
    marker = tmp_path / "pwned"
    write_malicious_weights(weights, marker)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _refused(capfd, ["train", str(engine_plan), "--out", str(run), "--resume", "--quiet"], weights, marker)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before, "a refused resume changed the run dir"


def test_resume_never_runs_code_from_a_training_state(tmp_path, trained_run, engine_plan, capfd):
    run = _run_with_only_final_checkpoint(trained_run, tmp_path / "run")
    state = run / "checkpoints" / "step-00000040" / "training_state.pt"
    marker = tmp_path / "pwned"
    write_malicious_weights(state, marker)
    _refused(capfd, ["train", str(engine_plan), "--out", str(run), "--resume", "--quiet"], state, marker)


def test_continual_pretraining_never_runs_code_from_its_checkpoint(tmp_path, tmp_path_factory, tiny_corpus, trained_run, capfd):
    source = tmp_path / "source"
    shutil.copytree(checkpoint.step_dir(trained_run, 40), source)
    marker = tmp_path / "pwned"
    write_malicious_weights(source / "lit_model.pth", marker)
    # the plan pins the sha256 of the malicious file: the pin alone does not protect
    plan = make_engine_plan(
        tmp_path_factory, tiny_corpus, "plan-continual-malicious",
        **{"run.model": {"checkpoint": str(source)}, "run.steps": 10, "run.max_injected_fraction": 0.5, "run.training.checkpoints": [10]},
    )  # fmt: skip
    assert not marker.exists()
    _refused(capfd, ["train", str(plan), "--out", str(tmp_path / "run"), "--quiet"], source / "lit_model.pth", marker)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_a_state_dict"])
def test_a_broken_weights_file_gets_one_clean_line(tmp_path, trained_run, capfd, damage):
    run = _run_with_only_final_checkpoint(trained_run, tmp_path / "run")
    weights = run / "checkpoints" / "step-00000040" / "lit_model.pth"
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        weights.write_bytes(os.urandom(4096))
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        torch.save([1, 2, 3], weights)
    _refused(capfd, ["score", str(run), "--quiet"], weights, tmp_path / "never")


def test_weights_of_another_model_get_one_clean_line(tmp_path, trained_run, capfd):
    run = _run_with_only_final_checkpoint(trained_run, tmp_path / "run")
    weights = run / "checkpoints" / "step-00000040" / "lit_model.pth"
    state = torch.load(weights, weights_only=True)
    name = next(iter(state))
    state[name] = torch.zeros(3, 3)
    torch.save(state, weights)
    line = _refused(capfd, ["score", str(run), "--quiet"], weights, tmp_path / "never")
    assert name in line
