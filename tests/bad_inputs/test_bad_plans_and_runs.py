"""Bad plan dirs, run dirs and command lines for inspect, train, score and analyze."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .harness import checkpoint_dir
from .harness import Evil, refused, rewrite_json

# ---------------------------------------------------------------- plan dirs (read by inspect and train)


def _plan_json(fn):
    return lambda plan: rewrite_json(plan / "plan.json", fn)


def _pop(*path):
    def apply(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return _plan_json(apply)


def _put(value, *path):
    def apply(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return _plan_json(apply)


def _write(name: str, data: bytes):
    return lambda plan: (plan / name).write_bytes(data)


# id: (break(plan dir), file the message names, key)
PLANS = {
    "plan_json_missing": (lambda p: (p / "plan.json").unlink(), "plan", "plan.json"),
    "plan_json_not_json": (_write("plan.json", b"{\"format\": \"designkit-plan/1\", "), "plan.json", None),
    "plan_json_a_list": (_write("plan.json", b"[1, 2, 3]\n"), "plan.json", None),
    "plan_json_a_string": (_write("plan.json", b"\"designkit-plan/1\"\n"), "plan.json", None),
    "plan_json_non_utf8": (_write("plan.json", b"{\"format\": \"\xff\xfe\"}"), "plan.json", None),
    "plan_json_wrong_format": (_put("designkit-plan/99", "format"), "plan.json", "format"),
    "plan_json_without_geometry": (_pop("geometry"), "plan.json", "geometry"),
    "plan_json_without_training": (_pop("training"), "plan.json", "training"),
    "plan_json_without_experiments": (_pop("experiments"), "plan.json", "experiments"),
    "plan_json_without_files": (_pop("files"), "plan.json", "files"),
    "plan_json_without_seq_len": (_pop("geometry", "seq_len"), "plan.json", "geometry.seq_len"),
    "plan_json_negative_steps": (_put(-3, "geometry", "steps"), "plan.json", "geometry.steps"),
    "plan_json_steps_a_string": (_put("many", "geometry", "steps"), "plan.json", "geometry"),
    "plan_json_geometry_a_list": (_put([64, 4, 2], "geometry"), "plan.json", "geometry"),
    "plan_json_betas_a_number": (_put(0.9, "training", "betas"), "plan.json", "training"),
    "plan_json_experiment_a_string": (_put(["canary"], "experiments"), "plan.json", "experiments[0]"),
    "items_parquet_edited": (lambda p: (p / "items.parquet").write_bytes((p / "items.parquet").read_bytes() + b"\0"), "items.parquet", None),
    "placements_parquet_missing": (lambda p: (p / "placements.parquet").unlink(), "placements.parquet", None),
    "file_added": (_write("notes.txt", b"an extra file\n"), "notes.txt", None),
    "tokenizer_edited": (lambda p: (p / "tokenizer" / "tokenizer.json").write_bytes(b"{}"), "tokenizer.json", None),
}


@pytest.mark.parametrize("case", sorted(PLANS))
def test_broken_plan_is_refused_by_inspect(case, tmp_path, plan_copy, capsys):
    breaks, file, key = PLANS[case]
    breaks(plan_copy)
    refused(["inspect", plan_copy], capsys, tmp_path, file=file, key=key)


@pytest.mark.parametrize("case", ["plan_json_a_list", "plan_json_without_geometry", "plan_json_negative_steps", "items_parquet_edited"])
def test_broken_plan_is_refused_by_train(case, tmp_path, plan_copy, capsys):
    breaks, file, key = PLANS[case]
    breaks(plan_copy)
    refused(["train", plan_copy, "--out", tmp_path / "run", "--accelerator", "cpu", "--quiet"], capsys, tmp_path, file=file, key=key)


def test_edited_learning_rate_in_plan_json_is_refused(tmp_path, plan_copy, capsys):
    rewrite_json(plan_copy / "plan.json", lambda m: m["training"].update(learning_rate=0.5))
    refused(["train", plan_copy, "--out", tmp_path / "run", "--accelerator", "cpu", "--quiet"], capsys, tmp_path, file="plan.json", key=None)


def test_edited_items_with_updated_hash_is_refused(tmp_path, plan_copy, capsys):
    from designkit.planning.planfile import sha256_file

    items = plan_copy / "items.parquet"
    items.write_bytes(items.read_bytes() + b"\0")
    rewrite_json(plan_copy / "plan.json", lambda m: m["files"].update({"items.parquet": sha256_file(items)}))
    refused(["train", plan_copy, "--out", tmp_path / "run", "--accelerator", "cpu", "--quiet"], capsys, tmp_path, file="plan.json", key=None)


INSPECT = {
    "seq_negative": (["--seq", "-1"], "--seq"),
    "seq_beyond_the_run": (["--seq", "10000000"], "--seq"),
    "item_unknown": (["--item", "canary/999999"], "--item"),
    "seq_not_a_number": (["--seq", "first"], "--seq"),
}


@pytest.mark.parametrize("case", sorted(INSPECT))
def test_bad_inspect_query_is_refused(case, tmp_path, plan_copy, capsys):
    extra, key = INSPECT[case]
    refused(["inspect", plan_copy, *extra], capsys, tmp_path, file=None, key=key)


# ---------------------------------------------------------------- train: output locations and options


def _user_dir(root: Path) -> Path:
    folder = root / "mydocs"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    return folder


TRAIN = {
    "out_under_proc": (lambda r: ["--out", "/proc/designkit-run"], "/proc/designkit-run", "--out"),
    "out_is_a_file": (lambda r: ["--out", _file(r / "run")], "run", "--out"),
    "out_under_a_file": (lambda r: ["--out", _file(r / "notes.txt") / "run"], "notes.txt", "--out"),
    "out_non_empty_user_dir": (lambda r: ["--out", _user_dir(r)], "mydocs", None),
    "force_on_user_dir": (lambda r: ["--out", _user_dir(r), "--force"], "mydocs", None),
    "resume_and_force": (lambda r: ["--out", _user_dir(r), "--resume", "--force"], "mydocs", None),
    "resume_a_user_dir": (lambda r: ["--out", _user_dir(r), "--resume"], "mydocs", None),
    "devices_zero": (lambda r: ["--out", r / "run", "--devices", "0"], None, "devices"),
    "devices_banana": (lambda r: ["--out", r / "run", "--devices", "banana"], None, "devices"),
    "accelerator_banana": (lambda r: ["--out", r / "run", "--accelerator", "banana"], None, "accelerator"),
    "num_nodes_zero": (lambda r: ["--out", r / "run", "--num-nodes", "0"], None, "num_nodes"),
    "strategy_unknown": (lambda r: ["--out", r / "run", "--strategy", "zero3"], "designkit train", "--strategy"),
    "logger_unknown": (lambda r: ["--out", r / "run", "--logger", "mlflow"], "designkit train", "--logger"),
    "corpus_elsewhere_missing": (lambda r: ["--out", r / "run", "--corpus", r / "no-corpus"], "no-corpus", "corpus.json"),
}


def _file(path: Path) -> Path:
    path.write_text("my notes\n")
    return path


@pytest.mark.parametrize("case", sorted(TRAIN))
def test_bad_train_command_is_refused(case, tmp_path, plan_copy, capsys):
    build, file, key = TRAIN[case]
    argv = ["train", plan_copy, *build(tmp_path), "--quiet"]
    if "--accelerator" not in argv:
        argv += ["--accelerator", "cpu"]
    refused(argv, capsys, tmp_path, file=file, key=key)


# ---------------------------------------------------------------- run dirs (read by score, analyze and train --resume)


def _run_json(fn):
    return lambda run: rewrite_json(run / "run.json", fn)


def _ckpt(name: str, data):
    def apply(run: Path) -> None:
        target = checkpoint_dir(run) / name
        target.write_bytes(data(target) if callable(data) else data)

    return apply


def _other_model_weights(target: Path) -> bytes:
    import io

    import torch
    from litgpt.config import Config
    from litgpt.model import GPT

    config = Config.from_file(target.parent / "model_config.yaml")
    other = Config(**{**{k: getattr(config, k) for k in ("vocab_size", "padded_vocab_size", "block_size", "n_layer", "n_head")}, "n_embd": 48})
    buffer = io.BytesIO()
    torch.save(GPT(other).state_dict(), buffer)
    return buffer.getvalue()


def _malicious_pickle(target: Path) -> bytes:
    import pickle

    return pickle.dumps({"model": Evil(target.parent.parent.parent.parent / "pwned")})


def _config(fn):
    def apply(run: Path) -> None:
        path = checkpoint_dir(run) / "model_config.yaml"
        config = yaml.safe_load(path.read_text())
        fn(config)
        path.write_text(yaml.safe_dump(config))

    return apply


RUNS = {
    "run_json_missing": (lambda r: (r / "run.json").unlink(), "run", "run.json"),
    "run_json_garbage": (lambda r: (r / "run.json").write_bytes(b"{plan_hash"), "run.json", None),
    "run_json_a_list": (lambda r: (r / "run.json").write_bytes(b"[]"), "run.json", None),
    "run_json_non_utf8": (lambda r: (r / "run.json").write_bytes(b"{\"format\": \"\xff\"}"), "run.json", None),
    "run_json_wrong_format": (_run_json(lambda m: m.update(format="designkit-run/7")), "run.json", "format"),
    "run_json_without_plan_hash": (_run_json(lambda m: m.pop("plan_hash") and None), "run.json", "plan_hash"),
    "run_json_plan_hash_of_another_plan": (_run_json(lambda m: m.update(plan_hash="0" * 64)), "run.json", "plan_hash"),
    "run_json_plan_path_missing": (_run_json(lambda m: m.update(plan_path="/nonexistent/plan")), "run.json", "plan_path"),
    "no_checkpoints": (lambda r: __import__("shutil").rmtree(r / "checkpoints"), "run", "checkpoints"),
    "lit_model_truncated": (_ckpt("lit_model.pth", lambda t: t.read_bytes()[: len(t.read_bytes()) // 2]), "lit_model.pth", None),
    "lit_model_garbage": (_ckpt("lit_model.pth", b"not a torch file at all"), "lit_model.pth", None),
    "lit_model_empty": (_ckpt("lit_model.pth", b""), "lit_model.pth", None),
    "lit_model_of_another_model": (_ckpt("lit_model.pth", _other_model_weights), "lit_model.pth", None),
    "lit_model_malicious_pickle": (_ckpt("lit_model.pth", _malicious_pickle), "lit_model.pth", None),
    "model_config_empty": (_ckpt("model_config.yaml", b""), "model_config.yaml", None),
    "model_config_garbage": (_ckpt("model_config.yaml", b"n_layer: [unclosed\n"), "model_config.yaml", None),
    "model_config_a_list": (_ckpt("model_config.yaml", b"- 1\n- 2\n"), "model_config.yaml", None),
    "model_config_n_head_not_dividing": (_config(lambda c: c.update(n_head=3)), "model_config.yaml", None),
    "model_config_unknown_field": (_config(lambda c: c.update(n_layers=3)), "model_config.yaml", "n_layers"),
    "model_config_python_tag": (_ckpt("model_config.yaml", b"n_layer: !!python/object/apply:os.system [touch pwned]\n"), "model_config.yaml", None),
}


@pytest.mark.parametrize("case", sorted(RUNS))
def test_broken_run_is_refused_by_score(case, tmp_path, run_copy, capsys):
    breaks, file, key = RUNS[case]
    breaks(run_copy)
    refused(["score", run_copy, "--device", "cpu", "--quiet"], capsys, tmp_path, file=file, key=key)
    assert not (tmp_path / "pwned").exists()


SCORE = {
    "device_banana": (["--device", "banana"], "--device"),
    "device_without_index": (["--device", "cuda:banana"], "--device"),
    "device_absent_gpu": (["--device", "cuda:63"], "--device"),
}


@pytest.mark.parametrize("case", sorted(SCORE))
def test_bad_score_device_is_refused(case, tmp_path, run_copy, capsys):
    extra, key = SCORE[case]
    refused(["score", run_copy, *extra, "--quiet"], capsys, tmp_path, file=None, key=key)


ANALYZE = {
    "out_under_proc": (lambda r: ["--out", "/proc/designkit-report"], "/proc/designkit-report", "--out"),
    "out_is_a_file": (lambda r: ["--out", _file(r / "report")], "report", "--out"),
    "out_is_the_run": (lambda r: ["--out", r / "run", "--force"], "run", None),
    "out_non_empty_user_dir": (lambda r: ["--out", _user_dir(r)], "mydocs", None),
    "force_on_user_dir": (lambda r: ["--out", _user_dir(r), "--force"], "mydocs", None),
    "no_scores_yet": (lambda r: ["--out", r / "report", "--no-score"], "run", "scores"),
    "device_banana": (lambda r: ["--out", r / "report", "--device", "banana"], None, "--device"),
}


@pytest.mark.parametrize("case", sorted(ANALYZE))
def test_bad_analyze_command_is_refused(case, tmp_path, run_copy, capsys):
    build, file, key = ANALYZE[case]
    refused(["analyze", run_copy, *build(tmp_path), "--quiet"], capsys, tmp_path, file=file, key=key)


RESUME = {
    "training_state_truncated": ("training_state.pt", lambda t: t.read_bytes()[:100], "training_state.pt"),
    "training_state_garbage": ("training_state.pt", lambda t: b"garbage", "training_state.pt"),
    "training_state_malicious_pickle": ("training_state.pt", _malicious_pickle, "training_state.pt"),
    "lit_model_truncated": ("lit_model.pth", lambda t: t.read_bytes()[:100], "lit_model.pth"),
    "lit_model_malicious_pickle": ("lit_model.pth", _malicious_pickle, "lit_model.pth"),
}


@pytest.mark.parametrize("case", sorted(RESUME))
def test_broken_checkpoint_is_refused_by_resume(case, tmp_path, run_copy, capsys):
    name, data, file = RESUME[case]
    _ckpt(name, data)(run_copy)
    plan = Path(json.loads((run_copy / "run.json").read_text())["plan_path"])
    refused(["train", plan, "--out", run_copy, "--resume", "--accelerator", "cpu", "--quiet"], capsys, tmp_path, file=file, key=None)
    assert not (tmp_path / "pwned").exists()


def test_resume_with_another_plan_is_refused(tmp_path, run_copy, capsys):
    rewrite_json(run_copy / "run.json", lambda m: m.update(plan_hash="f" * 64))
    plan = Path(json.loads((run_copy / "run.json").read_text())["plan_path"])
    refused(["train", plan, "--out", run_copy, "--resume", "--accelerator", "cpu", "--quiet"], capsys, tmp_path, file="run.json", key="plan_hash")


def test_bad_precision_at_launch_is_blamed_on_precision_not_devices():
    from designkit.errors import InputError
    from engine.settings import make_fabric

    with pytest.raises(InputError) as refusal:
        make_fabric(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", precision="fp7")
    assert refusal.value.field == "training.precision" and "'fp7'" in str(refusal.value)
