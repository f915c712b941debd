"""The model: a ``litgpt.model.GPT`` from the plan's resolved config, or a checkpoint's weights.

Also the embedding-noise hook for ``noise`` edits (Gaussian watermarks, GW): seeded
Gaussian noise added to the input embeddings of exactly the sequences the plan names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from litgpt.config import Config
from litgpt.model import GPT, CausalSelfAttention, LLaMAMLP
from litgpt.utils import reset_parameters

from designkit.errors import InputError
from designkit.model_config import build_config, read_config_file
from designkit.probes.watermark import watermark_noise
from designkit.runfile import MODEL_CONFIG_FILE, MODEL_FILE


def plan_config(plan) -> Config:
    """The plan's model config; for continual pretraining it must still match the checkpoint's."""
    model = plan.model_info
    config = Config(**model.config)
    checkpoint = model.checkpoint
    if checkpoint:
        path = Path(checkpoint) / MODEL_CONFIG_FILE
        if not (Path(checkpoint) / MODEL_FILE).is_file() or not path.is_file():
            raise InputError(checkpoint, MODEL_FILE, f"expected the LitGPT checkpoint the plan continues from ({MODEL_FILE} + {MODEL_CONFIG_FILE})")
        theirs = _jsonable(dataclasses.asdict(checkpoint_model_config(checkpoint)))
        if theirs != _jsonable(model.config):
            raise InputError(path, None, "expected the same model config as when the plan was made (the checkpoint changed)")
    return config


def checkpoint_model_config(directory: str | Path) -> Config:
    """The ``Config`` of a LitGPT checkpoint dir, from its ``model_config.yaml`` read as data only."""
    path = Path(directory) / MODEL_CONFIG_FILE
    return build_config(read_config_file(path), path, None)


def verify_checkpoint_weights(plan) -> None:
    """Continual pretraining: the checkpoint's weights must be the ones the plan was made from.

    The digest is cached while the file's size and mtime hold: a many-GB checkpoint is read
    once, not on every plan and train."""
    from designkit.file_hashes import sha256_file

    model = plan.model_info
    expected = model.checkpoint_sha256
    if not model.checkpoint or not expected:
        return
    weights = Path(model.checkpoint) / MODEL_FILE
    if sha256_file(weights) != expected:
        raise InputError(weights, None, f"expected sha256 {expected[:12]}… as recorded in the plan (the checkpoint's weights changed)")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def initialize_weights(model: GPT, n_layer: int, n_embd: int, *, materialize: bool) -> None:
    """GPT-NeoX initialization (Black et al. 2022), exactly as ``litgpt.pretrain.initialize_weights``.

    With ``materialize=False`` (FSDP) only the ``reset_parameters`` hooks are set; FSDP calls
    them when it materializes each shard.
    """

    def init_weights(module: nn.Module, std: float) -> None:
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)

    for mod in model.modules():
        if isinstance(mod, (nn.Embedding, nn.Linear)):
            mod.reset_parameters = partial(init_weights, mod, std=math.sqrt(2.0 / 5 / n_embd))
    # a separate loop because `mod.proj` below is an nn.Linear too
    for mod in model.modules():
        if isinstance(mod, (LLaMAMLP, CausalSelfAttention)):
            mod.proj.reset_parameters = partial(init_weights, mod.proj, std=(1 / math.sqrt(n_embd) / n_layer))
    if materialize:
        reset_parameters(model)


def build_model(fabric, config: Config, seq_len: int, seed: int, *, sharded: bool) -> GPT:
    """A freshly initialised GPT, identical on every rank (seeded before init)."""
    fabric.seed_everything(seed, verbose=False)
    with fabric.init_module(empty_init=sharded):
        model = GPT(config)
    initialize_weights(model, config.n_layer, config.n_embd, materialize=not sharded)
    model.max_seq_length = seq_len  # rope cache for the run's sequences only
    return model


def raw_gpt(model: nn.Module) -> GPT:
    """The GPT inside Fabric's and torch.compile's wrappers."""
    module = getattr(model, "module", model)
    return getattr(module, "_orig_mod", module)


def noise_tensor(seed: int, std: float, seq_len: int, n_embd: int) -> torch.Tensor:
    """The noise of one span: a function of (seed, std, shape) only, drawn on the CPU, the same
    on every device; the watermark probe re-derives it with the same function."""
    return watermark_noise(seed, std, seq_len, n_embd)


@contextlib.contextmanager
def embedding_noise(
    model: nn.Module,
    rows: np.ndarray,
    seeds: np.ndarray,
    stds: np.ndarray,
    offsets: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> Iterator[None]:
    """Add seeded Gaussian noise to the token embeddings of the next forward pass: for each
    ``i``, positions ``[offsets[i], offsets[i] + lengths[i])`` of row ``rows[i]`` (default:
    the whole row). The noise of a span is ``noise_tensor(seed, std, span length)``, so the
    same seed gives the same watermark wherever the span lands.

    A no-op (no hook registered) when no row of the micro-batch has a noise edit, so
    runs without GW experiments pay nothing. With torch.compile the hook triggers a
    recompile of the few noisy steps' graph; GW runs are expected to be small.
    """
    if len(rows) == 0:
        yield
        return
    embedding = raw_gpt(model).transformer.wte
    offsets = np.zeros(len(rows), np.int64) if offsets is None else np.asarray(offsets, np.int64)
    lengths = np.full(len(rows), np.iinfo(np.int64).max, np.int64) if lengths is None else np.asarray(lengths, np.int64)

    def add_noise(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        seq_len, n_embd = output.shape[1], output.shape[2]
        noise = torch.zeros(len(rows), seq_len, n_embd)
        for i, (seed, std, start, length) in enumerate(zip(seeds, stds, offsets, lengths)):
            n = int(min(length, seq_len - start))  # a whole-window edit covers seq_len + 1 tokens, of which seq_len are inputs
            if n > 0:
                noise[i, int(start) : int(start) + n] = noise_tensor(int(seed), float(std), n, n_embd)
        index = torch.as_tensor(rows, device=output.device)
        return output.index_add(0, index, noise.to(device=output.device, dtype=output.dtype))

    handle = embedding.register_forward_hook(add_noise)
    try:
        yield
    finally:
        handle.remove()
