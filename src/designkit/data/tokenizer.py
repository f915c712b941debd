"""Tokenizers without torch: load a ``tokenizer.json`` or train a byte-level BPE locally.

A trained tokenizer is written as ``tokenizer.json`` plus ``tokenizer_config.json`` (with
``bos_token``/``eos_token``), the layout ``litgpt.Tokenizer`` reads from a checkpoint dir.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from designkit import atomic_files
from designkit.errors import InputError, quote

EOS_TOKEN = "<|endoftext|>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class TextTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer plus the EOS/BOS ids designkit needs."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise InputError(directory, "tokenizer.json", "expected a tokenizer file, found none")
        self.directory = directory
        try:
            self.backend = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises a bare Exception for every parse error
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise InputError(path, None, f"expected a Hugging Face tokenizers file ({reason})") from None
        config = {}
        config_path = directory / "tokenizer_config.json"
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(config_path, None, f"expected a JSON object ({getattr(exc, 'msg', None) or type(exc).__name__})") from None
            if not isinstance(config, dict):
                raise InputError(config_path, None, f"expected a JSON object, got {type(config).__name__}")
        self.eos_id = self._special_id(config.get("eos_token"), directory, "eos_token")
        self.bos_id = self._special_id(config.get("bos_token"), directory, "bos_token", required=False)
        # padded models may be larger; this is the number of ids the tokenizer can emit
        self.vocab_size = self.backend.get_vocab_size(with_added_tokens=True)
        added = self.backend.get_added_tokens_decoder()
        self.special_ids = sorted(
            {i for i in (self.eos_id, self.bos_id) if i is not None} | {i for i, tok in added.items() if tok.special}
        )

    def _special_id(self, token, directory: Path, field: str, required: bool = True) -> int | None:
        if isinstance(token, dict):
            token = token.get("content")
        if token is None:
            token = EOS_TOKEN if field == "eos_token" else None
        if token is None:
            return None
        token_id = self.backend.token_to_id(token)
        if token_id is None and required:
            raise InputError(directory / "tokenizer_config.json", field, f"expected a token of the vocabulary, got {quote(token)}")
        return token_id

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(map(int, ids)), skip_special_tokens=False)

    def decode_batch(self, batch: Sequence[Sequence[int]] | np.ndarray) -> list[str]:
        rows = batch.tolist() if isinstance(batch, np.ndarray) else [list(map(int, ids)) for ids in batch]
        return self.backend.decode_batch(rows, skip_special_tokens=False)


def lazy_decoder(directory: str | Path):
    """``decode(ids) -> str`` with the tokenizer in ``directory``, loaded on the first call
    (a plan's probes need it only if one of them reads generated text)."""
    loaded: list[TextTokenizer] = []

    def decode(ids: Sequence[int]) -> str:
        if not loaded:
            loaded.append(TextTokenizer(directory))
        return loaded[0].decode(ids)

    return decode


def train_bpe_tokenizer(documents: Iterable[str], vocab_size: int, out_dir: str | Path) -> TextTokenizer:
    """Train a byte-level BPE (GPT-2 style) on ``documents`` and write it to ``out_dir``.

    Training is deterministic for the same documents in the same order.
    """
    if vocab_size < 300:
        raise InputError(None, "tokenizer.train_vocab", f"expected at least 300 (256 bytes + merges), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_files.write_text(out_dir / "tokenizer.json", tokenizer.to_str(pretty=False))
    write_tokenizer_config(out_dir)
    return TextTokenizer(out_dir)


def write_tokenizer_config(out_dir: Path) -> None:
    atomic_files.write_json(
        out_dir / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "bos_token": EOS_TOKEN,
            "eos_token": EOS_TOKEN,
            "model_max_length": 1_000_000,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
