"""A prepared token corpus: one memmap of tokens, a document index and a fingerprint.

See docs/formats.md (CORPUS dir). Preparing is streaming: documents are tokenized in
batches and appended to ``tokens.bin``, so corpora larger than memory work.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from designkit import atomic_files, file_hashes
from designkit.data import pretokenized, sources, stdlib_docs
from designkit.data.tokenizer import TOKENIZER_FILES, TextTokenizer, train_bpe_tokenizer
from designkit.errors import InputError

FORMAT = "designkit-corpus/1"
_BATCH_DOCS = 512


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def _sha256_files(paths: Iterable[Path]) -> str:
    return file_hashes.digest_files(paths)


def _batched(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class TokenCorpus:
    """Read side of a CORPUS dir."""

    path: Path
    meta: dict
    tokens: np.ndarray  # memmap, read-only
    documents: np.ndarray  # int64 document starts, then n_tokens

    @classmethod
    def open(cls, path: str | Path) -> TokenCorpus:
        path = Path(path)
        meta_path = path / "corpus.json"
        if not meta_path.is_file():
            raise InputError(path, "corpus.json", "expected a prepared corpus directory (run designkit prepare-corpus)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise InputError(meta_path, "format", f"expected {FORMAT!r}, got {meta.get('format')!r}")
        dtype = np.dtype(meta["dtype"])
        expected_bytes = meta["n_tokens"] * dtype.itemsize
        token_path = path / "tokens.bin"
        if not token_path.is_file() or token_path.stat().st_size != expected_bytes:
            raise InputError(token_path, None, f"expected {expected_bytes} bytes of {dtype} tokens")
        tokens = np.memmap(token_path, dtype=dtype, mode="r") if expected_bytes else np.zeros(0, dtype)
        documents = np.load(path / "documents.npy", mmap_mode="r")
        return cls(path=path, meta=meta, tokens=tokens, documents=documents)

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    @property
    def eos_id(self) -> int:
        return int(self.meta["eos_id"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    def tokenizer(self) -> TextTokenizer:
        return TextTokenizer(self.path)

    def content_fingerprint(self) -> str:
        """The fingerprint of the files as they are now: sha256 over every byte of ``tokens.bin``
        and ``tokenizer.json`` (``corpus.json``'s ``fingerprint`` only says what they were).

        Reading a 210B-token corpus takes long, so the result is cached while the files'
        paths, sizes and modification times hold (``designkit.file_hashes``).
        """
        return file_hashes.sha256_files(fingerprint_files(self.path))


def fingerprint_files(corpus_dir: Path) -> list[Path]:
    """The files the fingerprint covers, in hashing order."""
    return [Path(corpus_dir) / "tokens.bin", Path(corpus_dir) / "tokenizer.json"]


def prepare_corpus(
    source: str | Path,
    out: str | Path,
    *,
    tokenizer_dir: str | Path | None = None,
    train_vocab: int | None = None,
    text_key: str = "text",
    dtype: str | None = None,
    eos_id: int | None = None,
    show_progress: bool = True,
    force: bool = False,
) -> TokenCorpus:
    """Turn ``source`` into a CORPUS dir at ``out`` (built aside, then renamed into place).

    ``source`` is a file, a directory, a glob pattern or a built-in name. Text
    (``.txt``/``.jsonl``/``.parquet``) is tokenized; token files (``.npy``/``.bin``, see
    ``designkit.data.pretokenized``) are imported as they are, split into documents at
    ``eos_id`` (default: the tokenizer's EOS), and need ``tokenizer_dir``. ``dtype`` is the
    id type of raw token files without a ``.npy`` header.
    """
    if (tokenizer_dir is None) == (train_vocab is None):
        raise InputError(None, "tokenizer", "expected exactly one of --tokenizer DIR or --train-tokenizer VOCAB")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise InputError(out, None, "expected an empty or new output directory (use --force to replace it)")
    builtin = isinstance(source, str) and source.startswith(sources.BUILTIN_PREFIX)
    files = None if builtin else sources.source_files(source)
    token_files = files is not None and sources.is_pretokenized(files)
    if token_files and tokenizer_dir is None:
        raise InputError(None, "--tokenizer", "expected --tokenizer DIR (holding tokenizer.json) for token files: its vocabulary must cover their ids")
    if not token_files and (dtype is not None or eos_id is not None):
        raise InputError(None, "--dtype" if dtype is not None else "--eos-id", "expected token files (.npy/.bin) as the source; text is split into documents by file or record")
    input_dtype = pretokenized.parse_dtype(dtype)

    documents = lambda: sources.iter_documents(source, text_key)  # noqa: E731
    if builtin:
        # built-in corpora are small: parse them once instead of once per pass
        cached = list(documents())
        documents = lambda: iter(cached)  # noqa: E731
    with atomic_files.atomic_directory(out, replace=True) as tmp:
        if train_vocab is not None:
            tokenizer = train_bpe_tokenizer(documents(), train_vocab, tmp)
        else:
            tokenizer_dir = Path(tokenizer_dir)
            for name in TOKENIZER_FILES:
                if (tokenizer_dir / name).is_file():
                    shutil.copyfile(tokenizer_dir / name, tmp / name)
            tokenizer = TextTokenizer(tmp)
        out_dtype = token_dtype(tokenizer.vocab_size)
        eos = tokenizer.eos_id if eos_id is None else int(eos_id)
        if token_files:
            imported = pretokenized.import_tokens(
                files, tmp / "tokens.bin", tmp / "documents.npy", out_dtype=out_dtype, vocab_size=tokenizer.vocab_size,
                eos_id=eos, tokenizer_json=tmp / "tokenizer.json", dtype=input_dtype, show_progress=show_progress,
            )  # fmt: skip
            n_tokens, n_documents, fingerprint = imported.n_tokens, imported.n_documents, imported.fingerprint
        else:
            n_tokens, n_documents = _tokenize_documents(documents(), tokenizer, out_dtype, tmp, show_progress)
            if n_tokens == 0:
                raise InputError(source, None, "expected at least one non-empty document")
            fingerprint = _sha256_files(fingerprint_files(tmp))
        meta = {
            "format": FORMAT,
            "source": str(source),
            "n_tokens": n_tokens,
            "n_documents": n_documents,
            "dtype": out_dtype.name,
            "vocab_size": tokenizer.vocab_size,
            "eos_id": eos,
            "bos_id": tokenizer.bos_id,
            "fingerprint": fingerprint,
        }
        atomic_files.write_json(tmp / "corpus.json", meta)
    file_hashes.remember(fingerprint_files(out), meta["fingerprint"])  # a rename keeps sizes and mtimes
    return TokenCorpus.open(out)


def _tokenize_documents(documents: Iterator[str], tokenizer: TextTokenizer, dtype: np.dtype, tmp: Path, show_progress: bool) -> tuple[int, int]:
    """Tokenize in batches into ``tmp/tokens.bin`` (each document followed by EOS) and write ``documents.npy``."""
    from tqdm.auto import tqdm

    eos = np.array([tokenizer.eos_id], dtype=dtype)
    starts = [0]
    n_tokens = 0
    with (tmp / "tokens.bin").open("wb") as fh, tqdm(desc="tokenizing", unit="doc", disable=not show_progress, file=sys.stderr) as bar:
        for batch in _batched(documents, _BATCH_DOCS):
            for ids in tokenizer.encode_batch(batch):
                array = np.asarray(ids, dtype=dtype)
                fh.write(array.tobytes())
                fh.write(eos.tobytes())
                n_tokens += array.size + 1
                starts.append(n_tokens)
            bar.update(len(batch))
            bar.set_postfix(tokens=f"{n_tokens:,}")
        fh.flush()
        os.fsync(fh.fileno())
    np.save(tmp / "documents.npy", np.asarray(starts, dtype=np.int64))
    return n_tokens, len(starts) - 1


def designkit_home() -> Path:
    """Where built-in corpora are cached (``$DESIGNKIT_HOME``, default ``~/.cache/designkit``)."""
    return file_hashes.designkit_home()


def builtin_corpus(name: str, *, train_vocab: int | None, tokenizer_dir: Path | None, show_progress: bool = True) -> TokenCorpus:
    """Prepare (once, then cache) a built-in corpus such as ``builtin:stdlib-docs``."""
    if name != f"{sources.BUILTIN_PREFIX}{stdlib_docs.BUILTIN_NAME}":
        raise InputError(None, "run.corpus", f"expected builtin:{stdlib_docs.BUILTIN_NAME} or a corpus directory, got {name!r}")
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    if tokenizer_dir is not None:
        key = "tok-" + _sha256_files([Path(tokenizer_dir) / "tokenizer.json"])[:16]
    else:
        key = f"bpe{train_vocab}"
    cache = designkit_home() / "corpora" / f"{stdlib_docs.BUILTIN_NAME}-{python}-{key}"
    if (cache / "corpus.json").is_file():
        return TokenCorpus.open(cache)
    return prepare_corpus(
        name, cache, tokenizer_dir=tokenizer_dir, train_vocab=train_vocab, show_progress=show_progress, force=True
    )
