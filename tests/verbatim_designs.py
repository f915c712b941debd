"""A random-token corpus and a verbatim design over it, shared by the verbatim tests.

Random tokens make the outcome clean: a removed span's suffix cannot be guessed from its
prefix (chance is 1 / ``N_SYMBOLS`` per token), so any completion beyond chance is memory.
Spans come in two parts each ``SPAN_HALF`` tokens long (prefix and suffix, both configurable in
the kind), so seq_len 32 windows fit many of them and the model sees each kept span many
times in a few seconds of CPU training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny_designs import TINY_MODEL

N_SYMBOLS = 64  # token ids 100 … 163 of the tiny corpus's 512-id tokenizer
SPAN_HALF = 8
DOCUMENT_TOKENS = 400


def random_token_corpus(root: Path, tokenizer_dir: Path, *, n_tokens: int, seed: int = 0, symbols: int = N_SYMBOLS, repeat: tuple[int, int, int] | None = None) -> Path:
    """A CORPUS dir of ``n_tokens`` uniformly random tokens in documents of ``DOCUMENT_TOKENS``;
    ``repeat = (source, destination, length)`` copies a stretch, so spans in it occur twice."""
    from designkit.data.corpus import TokenCorpus, prepare_corpus

    eos_id = TokenCorpus.open(tokenizer_dir).eos_id
    tokens = np.random.default_rng(seed).integers(100, 100 + symbols, size=n_tokens).astype(np.uint16)
    tokens[DOCUMENT_TOKENS - 1 :: DOCUMENT_TOKENS] = eos_id
    if repeat is not None:
        source, destination, length = repeat
        tokens[destination : destination + length] = tokens[source : source + length]
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "tokens.npy", tokens)
    prepare_corpus(root / "tokens.npy", root / "corpus", tokenizer_dir=tokenizer_dir, show_progress=False)
    return root / "corpus"


def verbatim_design(corpus: Path, *, n: int, steps: int, min_trained: int = 1, **training) -> dict:
    return {
        "name": "memv",
        "seed": 11,
        "run": {
            "model": {"config": dict(TINY_MODEL)},
            "corpus": str(corpus),
            "seq_len": 32,
            "global_batch": 8,
            "steps": steps,
            "reserve_fraction": 0.49,
            "max_injected_fraction": 0.5,
            "training": {"learning_rate": 3e-3, "warmup_steps": 4, "checkpoints": [steps], "save_initial": False, "log_every": 50, **training},
        },
        "leakage": {"scan_corpus": False},
        "experiments": [
            {
                "name": "memv",
                "kind": "verbatim",
                "items": {"generate": {"n": n, "min_trained_sequences": min_trained}},
                "arms": {"kept": {"dose": 0, "share": 0.5}, "removed": {"dose": 1, "share": 0.5}},
                "params": {"prefix_tokens": SPAN_HALF, "suffix_tokens": SPAN_HALF},
            }
        ],
    }


def repeated_core_corpus(root: Path, tokenizer_dir: Path, *, core_tokens: int, copies: int, reserve_tokens: int, seed: int = 0) -> Path:
    """A CORPUS dir whose training region is one random document of ``core_tokens`` repeated
    ``copies`` times (duplicated text: every span of it occurs ``copies`` times), followed by
    fresh random documents (``reserve_tokens``, the reserve region and a little more).

    The model memorizes a small core fast, so kept spans are completed after a few seconds of
    training, and every removed span's many occurrences must all be removed.
    """
    from designkit.data.corpus import TokenCorpus, prepare_corpus

    eos_id = TokenCorpus.open(tokenizer_dir).eos_id
    rng = np.random.default_rng(seed)
    core = rng.integers(100, 100 + N_SYMBOLS, size=core_tokens).astype(np.uint16)
    core[-1] = eos_id
    tail = rng.integers(100, 100 + N_SYMBOLS, size=reserve_tokens).astype(np.uint16)
    tail[DOCUMENT_TOKENS - 1 :: DOCUMENT_TOKENS] = eos_id
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "tokens.npy", np.concatenate([np.tile(core, copies), tail]))
    prepare_corpus(root / "tokens.npy", root / "corpus", tokenizer_dir=tokenizer_dir, show_progress=False)
    return root / "corpus"
