"""Bad designs: each is refused by ``designkit plan`` with one line naming design.yaml and the key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from .harness import edit_design, refused, write_yaml

BIG = 10**30  # an integer beyond int64, as YAML reads `steps: 1000000000000000000000000000000`


def _set(path: str, value):
    """A mutation setting the dotted key ``path`` (list indices as numbers) to ``value``."""

    def apply(design: dict) -> None:
        node = design
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _drop(path: str):
    def apply(design: dict) -> None:
        node = design
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[keys[-1]]

    return apply


TRAINING = "run.training"
BENCH = "experiments.0"
CANARY = "experiments.1"

# id: (mutation, key the message must name)
CASES = {
    # top level
    "name_missing": (_drop("name"), "name"),
    "name_with_trailing_newline": (_set("name", "tiny\n"), "name"),
    "name_uppercase": (_set("name", "Tiny"), "name"),
    "name_unicode": (_set("name", "tïny"), "name"),
    "name_not_a_string": (_set("name", 12), "name"),
    "unknown_top_level_key": (_set("nmae", "x"), "nmae"),
    "seed_negative": (_set("seed", -1), "seed"),
    "seed_string": (_set("seed", "seven"), "seed"),
    "seed_beyond_int64": (_set("seed", BIG), "seed"),
    "description_not_a_string": (_set("description", 123), "description"),
    "experiments_empty": (_set("experiments", []), "experiments"),
    "experiments_not_a_list": (_set("experiments", {"bench": 1}), "experiments"),
    # run geometry
    "steps_beyond_int64": (_set("run.steps", BIG), "run.steps"),
    "steps_negative": (_set("run.steps", -5), "run.steps"),
    "steps_zero": (_set("run.steps", 0), "run.steps"),
    "steps_fractional": (_set("run.steps", 2.5), "run.steps"),
    "steps_nan": (_set("run.steps", math.nan), "run.steps"),
    "seq_len_string": (_set("run.seq_len", "long"), "run.seq_len"),
    "seq_len_beyond_block_size": (_set("run.seq_len", 128), "run.seq_len"),
    "global_batch_zero": (_set("run.global_batch", 0), "run.global_batch"),
    "global_batch_beyond_int64": (_set("run.global_batch", BIG), "run.global_batch"),
    "run_too_large_to_address": (_set("run.steps", 2**62), "run.steps"),
    "max_injected_fraction_zero": (_set("run.max_injected_fraction", 0), "run.max_injected_fraction"),
    "max_injected_fraction_above_one": (_set("run.max_injected_fraction", 2.0), "run.max_injected_fraction"),
    "max_injected_fraction_nan": (_set("run.max_injected_fraction", math.nan), "run.max_injected_fraction"),
    "reserve_fraction_too_large": (_set("run.reserve_fraction", 0.7), "run.reserve_fraction"),
    "reserve_fraction_nan": (_set("run.reserve_fraction", math.nan), "run.reserve_fraction"),
    "unknown_run_key": (_set("run.stpes", 3), "run.stpes"),
    # model
    "model_none_given": (_set("run.model", {}), "run.model"),
    "model_two_given": (_set("run.model.name", "pythia-14m"), "run.model"),
    "model_config_unknown_field": (_set("run.model.config.n_layers", 2), "run.model.config.n_layers"),
    "model_config_n_head_not_dividing": (_set("run.model.config.n_head", 3), "run.model.config"),
    "model_config_not_a_mapping": (_set("run.model.config", [1, 2]), "run.model.config"),
    "model_config_negative_layers": (_set("run.model.config.n_layer", -2), "run.model.config"),
    "model_name_unknown": (lambda d: d["run"].update(model={"name": "gpt-17"}), "run.model.name"),
    "model_checkpoint_missing": (lambda d: d["run"].update(model={"checkpoint": "no/such/checkpoint"}), "run.model.checkpoint"),
    # corpus and tokenizer
    "corpus_missing_directory": (_set("run.corpus", "no/such/corpus"), "run.corpus"),
    "corpus_path_too_long_for_the_file_system": (_set("run.corpus", "X" * 300), "run.corpus"),
    "items_path_with_nul_byte": (_set(f"{BENCH}.items", "items\0.jsonl"), "experiments[0].items"),
    "corpus_unknown_builtin": (lambda d: d["run"].update(corpus="builtin:wikipedia", tokenizer={"train_vocab": 512}), "run.corpus"),
    "builtin_corpus_without_tokenizer": (_set("run.corpus", "builtin:stdlib-docs"), "run.tokenizer"),
    "tokenizer_both_given": (lambda d: d["run"].update(corpus="builtin:stdlib-docs", tokenizer={"train_vocab": 512, "path": "tok"}), "run.tokenizer"),
    "tokenizer_train_vocab_too_small": (lambda d: d["run"].update(corpus="builtin:stdlib-docs", tokenizer={"train_vocab": 10}), "run.tokenizer.train_vocab"),
    "tokenizer_train_vocab_beyond_int64": (lambda d: d["run"].update(corpus="builtin:stdlib-docs", tokenizer={"train_vocab": BIG}), "run.tokenizer.train_vocab"),
    # training (checked at plan time, not when training starts)
    "learning_rate_nan": (_set(f"{TRAINING}.learning_rate", math.nan), f"{TRAINING}.learning_rate"),
    "learning_rate_infinite": (_set(f"{TRAINING}.learning_rate", math.inf), f"{TRAINING}.learning_rate"),
    "learning_rate_negative": (_set(f"{TRAINING}.learning_rate", -1e-3), f"{TRAINING}.learning_rate"),
    "min_lr_negative": (_set(f"{TRAINING}.min_lr", -1.0), f"{TRAINING}.min_lr"),
    "min_lr_above_learning_rate": (_set(f"{TRAINING}.min_lr", 1.0), f"{TRAINING}.min_lr"),
    "warmup_steps_negative": (_set(f"{TRAINING}.warmup_steps", -4), f"{TRAINING}.warmup_steps"),
    "beta1_above_one": (_set(f"{TRAINING}.beta1", 1.5), f"{TRAINING}.beta1"),
    "beta2_negative": (_set(f"{TRAINING}.beta2", -0.1), f"{TRAINING}.beta2"),
    "eps_zero": (_set(f"{TRAINING}.eps", 0.0), f"{TRAINING}.eps"),
    "weight_decay_negative": (_set(f"{TRAINING}.weight_decay", -0.1), f"{TRAINING}.weight_decay"),
    "weight_decay_nan": (_set(f"{TRAINING}.weight_decay", math.nan), f"{TRAINING}.weight_decay"),
    "grad_clip_negative": (_set(f"{TRAINING}.grad_clip", -1.0), f"{TRAINING}.grad_clip"),
    "precision_unknown": (_set(f"{TRAINING}.precision", "fp7"), f"{TRAINING}.precision"),
    "micro_batch_not_dividing_batch": (_set(f"{TRAINING}.micro_batch_size", 3), f"{TRAINING}.micro_batch_size"),
    "micro_batch_zero": (_set(f"{TRAINING}.micro_batch_size", 0), f"{TRAINING}.micro_batch_size"),
    "checkpoints_zero": (_set(f"{TRAINING}.checkpoints", 0), f"{TRAINING}.checkpoints"),
    "checkpoints_beyond_steps": (_set(f"{TRAINING}.checkpoints", [5, 999]), f"{TRAINING}.checkpoints"),
    "log_every_zero": (_set(f"{TRAINING}.log_every", 0), f"{TRAINING}.log_every"),
    "compile_not_a_bool": (_set(f"{TRAINING}.compile", "yes"), f"{TRAINING}.compile"),
    # experiments
    "experiment_name_with_trailing_newline": (_set(f"{BENCH}.name", "bench\n"), "experiments[0].name"),
    "experiment_name_duplicate": (_set(f"{CANARY}.name", "bench"), "experiments[1].name"),
    "experiment_kind_unknown": (_set(f"{BENCH}.kind", "astrology"), "experiments[0].kind"),
    "experiment_kind_not_a_string": (_set(f"{BENCH}.kind", ["canary"]), "experiments[0].kind"),
    "experiment_not_a_mapping": (_set(BENCH, "bench"), "experiments[0]"),
    "arms_empty": (_set(f"{BENCH}.arms", {}), "experiments[0].arms"),
    "arms_a_list": (_set(f"{BENCH}.arms", [{"dose": 0, "share": 1}]), "experiments[0].arms"),
    "arm_name_uppercase": (lambda d: d["experiments"][0]["arms"].update(X4=d["experiments"][0]["arms"].pop("x4")), "experiments[0].arms.X4"),
    "arm_name_with_trailing_newline": (lambda d: d["experiments"][0]["arms"].update({"x4\n": d["experiments"][0]["arms"].pop("x4")}), "experiments[0].arms"),
    "arm_dose_negative": (_set(f"{BENCH}.arms.x4.dose", -2), "experiments[0].arms.x4.dose"),
    "arm_dose_beyond_int64": (_set(f"{BENCH}.arms.x4.dose", BIG), "experiments[0].arms.x4.dose"),
    "arm_dose_missing": (lambda d: d["experiments"][0]["arms"]["x4"].pop("dose"), "experiments[0].arms.x4.dose"),
    "arm_share_zero": (_set(f"{BENCH}.arms.x4.share", 0.0), "experiments[0].arms.x4.share"),
    "arm_share_nan": (_set(f"{BENCH}.arms.x4.share", math.nan), "experiments[0].arms.x4.share"),
    "arm_shares_not_summing_to_one": (_set(f"{BENCH}.arms.x4.share", 0.4), "experiments[0].arms"),
    "two_control_arms": (_set(f"{BENCH}.arms.x4.dose", 0), "experiments[0].arms"),
    "arm_window_reversed": (_set(f"{BENCH}.arms.x4.window", [0.5, 0.2]), "experiments[0].arms.x4.window"),
    "window_one_number": (_set(f"{BENCH}.window", [0.1]), "experiments[0].window"),
    "window_beyond_the_run": (_set(f"{CANARY}.window", [0.2, 1.3]), "experiments[1].window"),
    "window_nan": (_set(f"{CANARY}.window", [math.nan, 0.5]), "experiments[1].window"),
    "placebo_without_control": (lambda d: d["experiments"][0].update(placebo=True, arms={"a": {"dose": 2, "share": 0.5}, "b": {"dose": 4, "share": 0.5}}), "experiments[0].arms"),
    "items_both_generate_and_path": (_set(f"{BENCH}.items", {"generate": {"n": 4}, "path": "x.jsonl"}), "experiments[0].items"),
    "items_neither": (_set(f"{BENCH}.items", {}), "experiments[0].items"),
    "items_file_missing": (_set(f"{BENCH}.items", "no/such/items.jsonl"), "experiments[0].items"),
    "items_file_wrong_suffix": (_set(f"{BENCH}.items", "design.yaml"), "experiments[0].items"),
    "stratify_by_missing_field": (_set(f"{CANARY}.stratify_by", "subject"), "experiments[1].stratify_by"),
    # kind parameters and generate options (checked at plan time)
    "contamination_n_negative": (_set(f"{BENCH}.items.generate.n", -3), "experiments[0].items.generate.n"),
    "contamination_n_zero": (_set(f"{BENCH}.items.generate.n", 0), "experiments[0].items.generate.n"),
    "contamination_n_missing": (_set(f"{BENCH}.items.generate", {}), "experiments[0].items.generate.n"),
    "contamination_generate_unknown_key": (_set(f"{BENCH}.items.generate.count", 3), "experiments[0].items.generate.count"),
    "contamination_n_choices_one": (_set(f"{BENCH}.params", {"n_choices": 1}), "experiments[0].params.n_choices"),
    "contamination_primary_outcome_unknown": (_set(f"{BENCH}.params", {"primary_outcome": "vibes"}), "experiments[0].params.primary_outcome"),
    "contamination_answer_marker_empty": (_set(f"{BENCH}.params", {"answer_marker": ""}), "experiments[0].params.answer_marker"),
    "canary_n_allocation_bomb": (_set(f"{CANARY}.items.generate.n", 100_000_000_000), "experiments[1].items.generate.n"),
    "canary_length_allocation_bomb": (_set(f"{CANARY}.items.generate.length", 10**12), "experiments[1].items.generate.length"),
    "canary_n_negative": (_set(f"{CANARY}.items.generate.n", -1), "experiments[1].items.generate.n"),
    "canary_length_zero": (_set(f"{CANARY}.items.generate.length", 0), "experiments[1].items.generate.length"),
    "canary_length_not_beyond_prefix": (_set(f"{CANARY}.items.generate.length", 4), "experiments[1].items.generate.length"),
    "canary_min_k_above_one": (_set(f"{CANARY}.params.min_k", 1.5), "experiments[1].params.min_k"),
    "canary_min_k_zero": (_set(f"{CANARY}.params.min_k", 0.0), "experiments[1].params.min_k"),
    "canary_prefix_tokens_negative": (_set(f"{CANARY}.params.prefix_tokens", -1), "experiments[1].params.prefix_tokens"),
    "canary_unknown_param": (_set(f"{CANARY}.params.prefix_token", 3), "experiments[1].params.prefix_token"),
    "texts_n_tokens_zero": (_set(CANARY, {"name": "texts", "kind": "texts", "items": {"generate": {"n": 4, "n_tokens": 0}}, "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}), "experiments[1].items.generate.n_tokens"),
    "texts_n_negative": (_set(CANARY, {"name": "texts", "kind": "texts", "items": {"generate": {"n": -4}}, "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}), "experiments[1].items.generate.n"),
    "texts_prefix_tokens_negative": (_set(CANARY, {"name": "texts", "kind": "texts", "items": {"generate": {"n": 4, "n_tokens": 16}}, "params": {"prefix_tokens": -2}, "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}), "experiments[1].params.prefix_tokens"),
    "texts_continuation_tokens_zero": (_set(CANARY, {"name": "texts", "kind": "texts", "items": {"generate": {"n": 4, "n_tokens": 16}}, "params": {"continuation_tokens": 0}, "arms": {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}}), "experiments[1].params.continuation_tokens"),
    # leakage, power, analysis
    "leakage_ngram_too_short": (_set("leakage.ngram", 2), "leakage.ngram"),
    "leakage_on_overlap_unknown": (_set("leakage.on_overlap", "shrug"), "leakage.on_overlap"),
    "leakage_max_corpus_tokens_negative": (_set("leakage.max_corpus_tokens", -10), "leakage.max_corpus_tokens"),
    "power_block_moved_to_analysis": (_set("power.alpha", 0.01), "power"),
    "analysis_power_above_one": (_set("analysis.power", 1.5), "analysis.power"),
    "analysis_continuous_method_unknown": (_set("analysis.continuous_method", "mann-whitney"), "analysis.continuous_method"),
    "analysis_multiplicity_unknown": (_set("analysis.multiplicity", "bonferroni"), "analysis.multiplicity"),
    "analysis_alpha_zero": (_set("analysis.alpha", 0.0), "analysis.alpha"),
    "analysis_equivalence_margin_negative": (_set("analysis.equivalence_margin", -0.2), "analysis.equivalence_margin"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_design_is_refused_with_one_line(case, tmp_path, valid_design, capsys):
    mutate, key = CASES[case]
    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, mutate))
    refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="design.yaml", key=key)


# designs whose bytes, not their values, are broken: (text, key)
RAW = {
    "empty_file": (b"", None),
    "a_list_not_a_mapping": (b"- name: x\n- seed: 3\n", None),
    "a_scalar_not_a_mapping": (b"just words\n", None),
    "invalid_yaml": (b"name: x\nrun: [unclosed\n", "line"),
    "tab_indentation": (b"name: x\nrun:\n\tsteps: 3\n", "line"),
    "non_utf8_bytes": (b"name: tiny\ndescription: caf\xe9 \xff\n", None),
    "python_object_tag": (b"name: !!python/object/apply:os.system [touch pwned]\n", None),
    "duplicate_steps_key": (None, "run.steps"),  # hsec: duplicate keys refused
    "duplicate_arm": (None, "experiments[0].arms.x4"),  # hsec: duplicate keys refused
    "alias_bomb": (None, None),  # hsec: aliases bounded, quoted values capped
}


def _duplicate_steps(design: dict) -> bytes:
    text = write_yaml_text(design)
    return text.replace("  steps: 40\n", "  steps: 40\n  steps: 4000\n").encode()


def _duplicate_arm(design: dict) -> bytes:
    text = write_yaml_text(design)
    assert "    x4:\n" in text  # yaml.safe_dump indents a list's items at its key's level
    return text.replace("    x4:\n", "    x4:\n      dose: 1\n      share: 0.5\n    x4:\n", 1).encode()


def _alias_bomb(design: dict) -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("name: *a8")
    return ("\n".join(lines) + "\n").encode()


def write_yaml_text(design: dict) -> str:
    import yaml

    return yaml.safe_dump(design, sort_keys=False)


_BUILT = {"duplicate_steps_key": _duplicate_steps, "duplicate_arm": _duplicate_arm, "alias_bomb": _alias_bomb}


@pytest.mark.parametrize("case", sorted(RAW))
def test_broken_design_file_is_refused_with_one_line(case, tmp_path, valid_design, capsys):
    data, key = RAW[case]
    if data is None:
        data = _BUILT[case](valid_design)
    design = tmp_path / "design.yaml"
    design.write_bytes(data)
    refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="design.yaml", key=key)


def test_missing_design_file_is_refused(tmp_path, capsys):
    refused(["plan", tmp_path / "nope.yaml", "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="nope.yaml", key=None)


def test_design_path_that_is_a_directory_is_refused(tmp_path, capsys):
    (tmp_path / "designs.yaml").mkdir()
    refused(["plan", tmp_path / "designs.yaml", "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="designs.yaml", key=None)


def test_invalid_model_config_keeps_litgpt_reason(tmp_path, valid_design, capsys):
    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, _set("run.model.config.n_head", 3)))
    result = refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="design.yaml", key="run.model.config")
    assert "Config ()" not in result.message and "n_head" in result.message.split("run.model.config", 1)[1], result.line


def test_unknown_builtin_corpus_names_the_design_file(tmp_path, valid_design, capsys):
    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, lambda d: d["run"].update(corpus="builtin:wikipedia", tokenizer={"train_vocab": 512})))
    refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="design.yaml", key="run.corpus")


def test_bad_precision_is_blamed_on_precision_not_devices(tmp_path, valid_design, capsys):
    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, _set(f"{TRAINING}.precision", "fp7")))
    result = refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="design.yaml", key="precision")
    assert "devices" not in result.message, result.line


def test_quoted_values_are_capped(tmp_path, valid_design, capsys):
    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, _set("name", "X" * 5000)))
    result = refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file="design.yaml", key="name")
    assert "X" * 100 not in result.line, "the echoed value must be capped at about 80 characters"
