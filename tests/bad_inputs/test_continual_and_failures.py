"""Continual pretraining from a broken or foreign checkpoint, a train that fails part-way, and a
design without a control arm (planned, with one warning)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

from .harness import Evil, checkpoint_dir, copy_tree, refused, run_cli, small_design, snapshot, write_yaml
from .test_bad_plans_and_runs import _other_model_weights


def _checkpoint(tmp_path: Path, small_run: Path) -> Path:
    return copy_tree(checkpoint_dir(small_run), tmp_path / "base-model")


def _continual_design(tmp_path: Path, tiny_corpus: Path, checkpoint: Path) -> Path:
    design = small_design(tiny_corpus)
    design["run"]["model"] = {"checkpoint": str(checkpoint)}
    return write_yaml(tmp_path / "design.yaml", design)


# id: (break(checkpoint dir), file the message names, key)
CHECKPOINTS = {
    "model_config_empty": (lambda c: (c / "model_config.yaml").write_bytes(b""), "model_config.yaml", None),
    "model_config_garbage": (lambda c: (c / "model_config.yaml").write_bytes(b"n_layer: [2,\n"), "model_config.yaml", "line"),
    "model_config_non_utf8": (lambda c: (c / "model_config.yaml").write_bytes(b"name: caf\xe9\n"), "model_config.yaml", None),
    "model_config_invalid": (
        lambda c: (c / "model_config.yaml").write_text(yaml.safe_dump({**yaml.safe_load((c / "model_config.yaml").read_text()), "n_head": 3})),
        "model_config.yaml", None,
    ),
    "model_config_missing": (lambda c: (c / "model_config.yaml").unlink(), "design.yaml", "run.model.checkpoint"),
    "weights_missing": (lambda c: (c / "lit_model.pth").unlink(), "design.yaml", "run.model.checkpoint"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_broken_checkpoint_to_continue_from_is_refused_by_plan(case, tmp_path, tiny_corpus, small_run, capsys):
    breaks, file, key = CHECKPOINTS[case]
    checkpoint = _checkpoint(tmp_path, small_run)
    breaks(checkpoint)
    design = _continual_design(tmp_path, tiny_corpus, checkpoint)
    refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file=file, key=key)


WEIGHTS = {
    "another_models_weights": _other_model_weights,
    "malicious_pickle": lambda target: pickle.dumps({"model": Evil(target.parent.parent / "pwned")}),
    "truncated": lambda target: target.read_bytes()[:200],
}


@pytest.mark.parametrize("case", sorted(WEIGHTS))
def test_train_refuses_weights_it_cannot_continue_from_and_leaves_nothing(case, tmp_path, tiny_corpus, small_run, capsys):
    """The plan pins these weights; train reads them before it writes anything."""
    checkpoint = _checkpoint(tmp_path, small_run)
    weights = checkpoint / "lit_model.pth"
    weights.write_bytes(WEIGHTS[case](weights))
    design = _continual_design(tmp_path, tiny_corpus, checkpoint)
    code, _, err = run_cli(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys)
    assert code == 0, err
    refused(["train", tmp_path / "plan", "--out", tmp_path / "run", "--accelerator", "cpu", "--quiet"], capsys, tmp_path,
            file="lit_model.pth", key=None)  # fmt: skip
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("existing", [False, True], ids=["new_dir", "empty_dir"])
def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_nothing(existing, tmp_path, plan_copy, monkeypatch):
    import engine.train

    def fail(*args, **kwargs):
        assert (run / "run.json").is_file()  # the run dir was initialized before the failure
        raise RuntimeError("out of memory (simulated)")

    run = tmp_path / "run"
    if existing:
        run.mkdir()
    monkeypatch.setattr(engine.train, "main", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        engine.train.train(plan_copy, run, accelerator="cpu", show_progress=False)
    assert snapshot(run) == {} if existing else not run.exists()


def test_design_without_control_arm_plans_with_one_warning(tmp_path, tiny_corpus, capsys):
    design = small_design(tiny_corpus)
    design["experiments"][0]["arms"] = {"x1": {"dose": 1, "share": 0.5}, "x3": {"dose": 3, "share": 0.5}}
    path = write_yaml(tmp_path / "design.yaml", design)
    code, out, err = run_cli(["plan", path, "--out", tmp_path / "plan", "--quiet"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("designkit: warning: ") and "Traceback" not in err, err
    assert "design.yaml: experiments[0].arms: no control arm" in lines[0]
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["experiments"][0]["control_arm"] is None


def test_refusal_is_one_line_from_a_real_process(tmp_path, run_copy):
    """In-process cases cannot see what a fresh interpreter prints (library warnings, logging):
    one real ``designkit score`` of a malicious checkpoint must still print exactly one line."""
    import subprocess
    import sys

    weights = checkpoint_dir(run_copy) / "lit_model.pth"
    weights.write_bytes(pickle.dumps({"model": Evil(tmp_path / "pwned")}))
    before = snapshot(tmp_path)
    result = subprocess.run([sys.executable, "-m", "designkit.cli", "score", str(run_copy), "--device", "cpu", "--quiet"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("designkit: error: ") and "lit_model.pth" in lines[0] and "weights_only=False" not in lines[0]
    assert snapshot(tmp_path) == before and not (tmp_path / "pwned").exists()
