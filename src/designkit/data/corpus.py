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

from designkit import artefacts, atomic_files, file_hashes
from designkit.data import pretokenized, sources, stdlib_docs
from designkit.data.tokenizer import TOKENIZER_FILES, TextTokenizer, train_bpe_tokenizer
from designkit.errors import InputError, quote

FORMAT = "designkit-corpus/1"
MIN_TRAIN_VOCAB, MAX_TRAIN_VOCAB = 300, 2**24
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
        meta = _read_meta(meta_path)
        dtype = np.dtype(meta["dtype"])
        expected_bytes = meta["n_tokens"] * dtype.itemsize
        token_path = path / "tokens.bin"
        if not token_path.is_file() or token_path.stat().st_size != expected_bytes:
            raise InputError(token_path, None, f"expected {expected_bytes} bytes of {dtype} tokens as corpus.json says")
        tokens = np.memmap(token_path, dtype=dtype, mode="r") if expected_bytes else np.zeros(0, dtype)
        documents = _read_documents(path / "documents.npy", meta["n_tokens"])
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


# corpus.json keys and their checks: the reader is the boundary for corpus dirs
_META_KEYS = {
    "n_tokens": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "n_documents": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "dtype": (lambda v: v in ("uint16", "uint32"), "'uint16' or 'uint32'"),
    "vocab_size": (lambda v: _is_int(v) and 1 <= v <= 2**32, "an integer in [1, 2**32]"),
    "eos_id": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "fingerprint": (lambda v: isinstance(v, str) and len(v) == 64, "a sha256 hex digest"),
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(meta_path, None, f"expected a JSON object ({getattr(exc, 'msg', None) or exc.__class__.__name__})") from None
    if not isinstance(meta, dict):
        raise InputError(meta_path, None, f"expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise InputError(meta_path, "format", f"expected {FORMAT!r}, got {str(meta.get('format'))[:80]!r}")
    for key, (ok, what) in _META_KEYS.items():
        if not ok(meta.get(key)):
            raise InputError(meta_path, key, f"expected {what}, got {str(meta.get(key))[:80]!r}")
    if meta["eos_id"] >= meta["vocab_size"]:
        raise InputError(meta_path, "eos_id", f"expected an id below vocab_size {meta['vocab_size']}, got {meta['eos_id']}")
    return meta


def _read_documents(path: Path, n_tokens: int) -> np.ndarray:
    """The document starts: int64, from 0 up to ``n_tokens``, never holding pickled objects."""
    try:
        documents = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, None, "expected the corpus's document index, found no file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, None, f"expected a .npy array of int64 document starts ({str(exc).splitlines()[0][:120]})") from None
    if documents.dtype != np.int64 or documents.ndim != 1 or len(documents) < 1:
        raise InputError(path, None, f"expected a 1-d int64 array of document starts, got {documents.dtype} of shape {documents.shape}")
    if documents[0] != 0 or documents[-1] != n_tokens or (len(documents) > 1 and np.any(np.diff(documents) < 0)):
        raise InputError(path, None, f"expected ascending document starts from 0 to n_tokens {n_tokens}")
    return documents


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
    atomic_files.check_output_dir(out)
    artefacts.check_output(out, "corpus", force=force, option="--out")
    if train_vocab is not None and not MIN_TRAIN_VOCAB <= train_vocab <= MAX_TRAIN_VOCAB:
        raise InputError(None, "--train-tokenizer", f"expected a vocabulary size in [{MIN_TRAIN_VOCAB}, {MAX_TRAIN_VOCAB:,}] (256 bytes + merges), got {train_vocab}")
    if tokenizer_dir is not None:
        TextTokenizer(tokenizer_dir)  # a broken tokenizer is the user's directory's fault: name it, not our copy
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
                raise InputError(source, None, "expected at least one non-empty document (all are empty or blank)")
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
        raise InputError(None, "run.corpus", f"expected builtin:{stdlib_docs.BUILTIN_NAME} or a corpus directory, got {quote(name)}")
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
