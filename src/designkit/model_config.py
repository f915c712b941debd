"""LitGPT model configs without torch.

``litgpt/config.py`` imports torch only lazily, but importing it through the ``litgpt``
package runs ``litgpt/__init__.py``, which imports torch. The planner must run on hosts
without torch, so this module loads that one file on its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

from designkit import yaml_files
from designkit.errors import InputError, expected, quote

LITGPT_DEFAULT_BLOCK_SIZE = 4096  # litgpt.config.Config.block_size


@functools.cache
def _config_module():
    try:
        spec = importlib.util.find_spec("litgpt")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "config.py"
    if "litgpt.config" in sys.modules:
        return sys.modules["litgpt.config"]
    module_spec = importlib.util.spec_from_file_location("_designkit_litgpt_config", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["_designkit_litgpt_config"] = module  # dataclasses resolve annotations through sys.modules
    module_spec.loader.exec_module(module)
    return module


def _config_class(file: str | Path | None, field: str):
    module = _config_module()
    if module is None:
        raise InputError(file, field, "expected litgpt to be installed to resolve model configs")
    return module.Config


# sizes that must be positive integers for any model litgpt can build
POSITIVE_SIZES = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "padded_vocab_size", "intermediate_size",
                  "n_query_groups", "head_size")  # fmt: skip
MAX_SIZE = 2**31 - 1


def _check_values(kwargs: dict[str, Any], file: str | Path | None, field: str | None) -> None:
    for key, value in kwargs.items():
        if key in POSITIVE_SIZES and value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
                raise InputError(file, _key(field, key), f"expected a positive integer below 2**31, got {quote(value)}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (value != value or abs(value) == float("inf") or value < 0):
            raise InputError(file, _key(field, key), f"expected a finite number >= 0, got {quote(value)}")


def _failure_reason(exc: BaseException) -> str:
    """litgpt's Config checks with bare asserts: the failed condition is the only reason there is."""
    if str(exc):
        return str(exc).splitlines()[0]
    frames = traceback.extract_tb(exc.__traceback__)
    line = (frames[-1].line or "").strip() if frames else ""
    return f"failed check: {line.removeprefix('assert ').replace('self.', '')}" if line else type(exc).__name__


def _key(field: str | None, key: object) -> str:
    return f"{field}.{key}" if field else str(key)[:80]


def build_config(kwargs: dict[str, Any], file: str | Path | None, field: str | None):
    """A litgpt ``Config`` from keyword arguments; InputError naming the field (and litgpt's
    failed check) otherwise. ``field`` is None where ``file`` holds the config itself."""
    Config = _config_class(file, field or "config")
    known = {f.name for f in dataclasses.fields(Config)}
    for key in kwargs:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(file, _key(field, key), f"expected a litgpt Config field, this is none{hint}")
    _check_values(kwargs, file, field)
    try:
        return Config(**kwargs)
    except (TypeError, ValueError, AssertionError, ZeroDivisionError, AttributeError) as exc:
        raise InputError(file, field, f"expected a valid litgpt Config ({_failure_reason(exc)})") from None


def checkpoint_config(directory: str | Path, file: str | Path | None = None) -> dict[str, Any]:
    path = Path(directory) / "model_config.yaml"
    if not path.is_file():
        raise InputError(file, "run.model.checkpoint", f"expected a LitGPT checkpoint directory with model_config.yaml, got {directory}")
    return read_config_file(path)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A checkpoint's ``model_config.yaml`` as a dict of litgpt ``Config`` fields (read as data only)."""
    raw = yaml_files.load(path, what="a LitGPT model_config.yaml")
    if not isinstance(raw, dict):
        raise expected(path, None, "a mapping of litgpt Config fields", raw)
    return raw


def resolve(model: Any, vocab_size: int | None, file: str | Path | None = None) -> dict[str, Any]:
    """The full LitGPT config dict for a ``ModelSpec`` (config dict, name or checkpoint)."""
    if model.config is not None:
        kwargs = dict(model.config)
        if vocab_size is not None:
            kwargs.setdefault("vocab_size", vocab_size)
            kwargs.setdefault("padded_vocab_size", vocab_size)
        kwargs.setdefault("name", "designkit")
        if _config_module() is None:
            # a planning host without litgpt: keep the kwargs; the engine's Config fills the rest
            kwargs.setdefault("block_size", LITGPT_DEFAULT_BLOCK_SIZE)
            return kwargs
        config = build_config(kwargs, file, "run.model.config")
    elif model.name is not None:
        Config = _config_class(file, "run.model.name")
        try:
            config = Config.from_name(model.name)
        except (ValueError, KeyError):
            raise InputError(file, "run.model.name", f"expected a LitGPT config name, got {quote(model.name)}") from None
        if config is None:
            raise InputError(file, "run.model.name", f"expected a LitGPT config name, got {quote(model.name)}")
        if vocab_size is not None and vocab_size > config.padded_vocab_size:
            raise InputError(file, "run.model.name", f"expected a model whose vocabulary ({config.padded_vocab_size}) holds the tokenizer's {vocab_size} ids")
    else:
        config = build_config(checkpoint_config(model.checkpoint, file), Path(model.checkpoint) / "model_config.yaml", None)
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def block_size(model: Any, file: str | Path | None = None) -> int | None:
    if model.checkpoint is not None:
        return checkpoint_config(model.checkpoint, file).get("block_size")
    if model.name is not None and _config_module() is None:
        return None
    return resolve(model, None, file)["block_size"]


def parameter_count(config: dict[str, Any]) -> int:
    """Approximate non-embedding + embedding parameters of a dense LitGPT GPT (for FLOPs and reports)."""
    n_embd, n_layer, n_head = config["n_embd"], config["n_layer"], config["n_head"]
    vocab = config.get("padded_vocab_size") or config["vocab_size"]
    head = config.get("head_size") or n_embd // n_head
    q_groups = config.get("n_query_groups") or n_head
    attn = n_embd * head * (n_head + 2 * q_groups) + n_head * head * n_embd
    inter = config.get("intermediate_size") or 4 * n_embd
    mlp = (3 if config.get("mlp_class_name") in ("LLaMAMLP", "GemmaMLP") else 2) * n_embd * inter
    return n_layer * (attn + mlp) + 2 * vocab * n_embd
