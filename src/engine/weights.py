"""Reading weights and training state from checkpoints that may come from someone else.

A ``.pth``/``.pt`` file is a pickle, and unpickled without restriction it can run any code
(issue 7: a ``lit_model.pth`` ran a shell command through Lightning's lazy loader). Every
load of such a file in designkit goes through ``read_torch_file``: ``torch.load`` with
``weights_only=True``, which refuses every global but tensors and plain containers, and
with ``mmap=True`` for zip-format files, so a many-GB checkpoint is mapped rather than read
twice into memory. A refused or broken file becomes one ``InputError`` naming it; torch's
own advice (retry with ``weights_only=False``) never reaches the user.

``load_weights`` puts a checked state dict into a Fabric-wrapped model under any strategy,
as ``fabric.load_raw`` would, but from the state dict read here instead of from Lightning's
unrestricted loader.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from designkit.errors import InputError, clip, quote

_REFUSED_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")


def read_torch_file(path: str | Path, *, what: str = "a PyTorch file written by torch.save") -> Any:
    """The object in ``path``, loaded on CPU without running any code it may carry."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, f"expected {what}, found no file")
    try:
        # zip-format files (torch.save's default) are memory-mapped; mmap refuses the legacy format
        mmap = zipfile.is_zipfile(path)
    except OSError as exc:
        raise InputError(path, None, f"expected a readable file ({exc.strerror})") from None
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickle protocols: a refusal is one line, not a line plus advice
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - an untrusted file may fail to parse in any way
        refused = _REFUSED_GLOBAL.search(str(exc))
        if refused:
            raise InputError(
                path, None, f"expected only tensors and plain containers; refused to load it, its pickle names {quote(refused.group(1))}, which could run code"
            ) from None
        raise InputError(path, None, f"expected {what} (the file is truncated, damaged or of another format)") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A model state dict (``{name: tensor}``); LitGPT's own checkpoints may nest it under ``"model"``."""
    state = read_torch_file(path, what="a PyTorch state dict written by torch.save")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise InputError(path, None, f"expected a state dict (a mapping of names to tensors), got a {type(state).__name__}")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise InputError(path, clip(str(name)), f"expected a tensor, got a {type(value).__name__}")
    return state


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """The state dict shapes of ``litgpt.model.GPT(config)``, built on the meta device (no memory)."""
    from litgpt.model import GPT

    with torch.device("meta"):
        model = GPT(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def check_matches(state: dict[str, torch.Tensor], config, path: str | Path, source: str | Path) -> None:
    """InputError unless ``state`` has exactly the names and shapes of ``GPT(config)``.

    ``source`` says where ``config`` came from (a ``model_config.yaml``, the plan), for the message.
    """
    expected = expected_shapes(config)
    model = f"the model in {source}"
    missing = [name for name in expected if name not in state]
    if missing:
        raise InputError(path, clip(missing[0]), f"expected the weights of {model}; {len(missing)} tensor(s) missing")
    unexpected = [name for name in state if name not in expected]
    if unexpected:
        raise InputError(path, clip(unexpected[0]), f"expected the weights of {model}; {len(unexpected)} tensor(s) it does not have")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise InputError(path, clip(name), f"expected shape {list(shape)} as in {model}, got {list(state[name].shape)}")


def read_model_weights(path: str | Path, config, source: str | Path) -> dict[str, torch.Tensor]:
    """``read_state_dict`` plus ``check_matches``: weights that load into ``GPT(config)`` as they are."""
    state = read_state_dict(path)
    check_matches(state, config, path, source)
    return state


def load_weights(fabric, model, state: dict[str, torch.Tensor]) -> None:
    """Load a full (unsharded) state dict into a model set up by ``fabric``, under any strategy.

    The same as ``fabric.load_raw(path, model)``, which would read the file with Lightning's
    unrestricted loader: FSDP gathers and writes back each shard, the others load in place.
    """
    from lightning.fabric.strategies import FSDPStrategy
    from lightning.fabric.wrappers import _unwrap_objects

    module = _unwrap_objects(model)
    if isinstance(fabric.strategy, FSDPStrategy):
        from lightning.fabric.strategies.model_parallel import _load_raw_module_state

        _load_raw_module_state(state, module=module, world_size=fabric.world_size, strict=True)
    else:
        fabric.strategy.load_module_state_dict(module=module, state_dict=state, strict=True)
