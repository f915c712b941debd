"""Import already-tokenized corpora: numpy token memmaps, as Dolma/OLMo and nanoGPT write them.

A token file is a flat array of uint16 or uint32 token ids in which every document ends
with an EOS id (nanoGPT's ``train.bin`` appends ``<|endoftext|>`` after each document,
OLMo's ``part-*.npy`` its EOS id). Three layouts are read:

- ``.npy`` with a numpy header (``np.save``): dtype and length come from the header;
- ``.npy`` without one (Dolma/OLMo write raw memmaps under that name) and ``.bin``
  (nanoGPT): raw little-endian ids, dtype from ``--dtype``.

Import is a chunked copy: each chunk is read with a plain file read (no memmap, so the
resident memory stays one chunk however large the corpus), checked against the
tokenizer's vocabulary, searched for EOS with ``np.flatnonzero`` to extend the document
index, hashed into the fingerprint and written. Nothing is re-tokenized.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from designkit.errors import InputError

SUFFIXES = (".npy", ".bin")
DTYPES = ("uint16", "uint32")
CHUNK_TOKENS = 1 << 24
"""Tokens per copied chunk (32 MiB of uint16): bounds memory, large enough to stream at disk speed."""


@dataclass(frozen=True)
class TokenFile:
    """One input file: ``n_tokens`` ids of ``dtype`` starting ``offset`` bytes in."""

    path: Path
    dtype: np.dtype
    offset: int
    n_tokens: int


def parse_dtype(dtype: str | None) -> np.dtype | None:
    if dtype is None:
        return None
    if dtype not in DTYPES:
        raise InputError(None, "--dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")
    return np.dtype(dtype).newbyteorder("<")


def open_token_file(path: Path, dtype: np.dtype | None) -> TokenFile:
    """Read the header (if any) and check the length; InputError names the file and what is wrong."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        has_header = fh.read(6) == b"\x93NUMPY"
        if has_header:
            fh.seek(0)
            try:
                version = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, header_dtype = read_header(fh)
            except ValueError as exc:
                raise InputError(path, None, f"expected a readable .npy header ({exc})") from None
            offset = fh.tell()
    if has_header:
        if header_dtype.str.lstrip("<=|") not in ("u2", "u4") or header_dtype.byteorder == ">":
            raise InputError(path, "dtype", f"expected a little-endian uint16 or uint32 token array, got {header_dtype}")
        if len(shape) != 1 and not (len(shape) == 2 and 1 in shape):
            raise InputError(path, "shape", f"expected a flat (1-D) token array, got shape {shape}")
        n_tokens = int(np.prod(shape))
        if size - offset != n_tokens * header_dtype.itemsize:
            raise InputError(path, None, f"expected {n_tokens * header_dtype.itemsize} bytes of tokens after the header, found {size - offset}")
        return TokenFile(path, np.dtype(header_dtype).newbyteorder("<"), offset, n_tokens)
    if dtype is None:
        raise InputError(path, "--dtype", f"expected --dtype {' or '.join(DTYPES)} for a raw token file (no .npy header)")
    if size % dtype.itemsize:
        raise InputError(path, None, f"expected a whole number of {dtype.name} tokens, got {size} bytes (odd length: wrong --dtype?)")
    return TokenFile(path, dtype, 0, size // dtype.itemsize)


class _HashingWriter:
    """Writes arrays to a file and hashes them in one background thread, in order.

    sha256 and file writes release the GIL, so hashing and writing chunk k overlap with
    reading and checking chunk k+1; at most two chunks are alive at a time.
    """

    def __init__(self, fh):
        from concurrent.futures import ThreadPoolExecutor

        self.fh = fh
        self.digest = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="designkit-import")
        self._pending = None

    def _job(self, array: np.ndarray) -> None:
        data = memoryview(array).cast("B")
        self.digest.update(data)
        self.fh.write(data)

    def write(self, array: np.ndarray) -> None:
        self.wait()
        self._pending = self._pool.submit(self._job, np.ascontiguousarray(array))

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()  # re-raises a write error here
            self._pending = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class ImportResult:
    n_tokens: int
    n_documents: int
    fingerprint: str


def import_tokens(
    files: Sequence[Path],
    tokens_out: Path,
    documents_out: Path,
    *,
    out_dtype: np.dtype,
    vocab_size: int,
    eos_id: int,
    tokenizer_json: Path,
    dtype: np.dtype | None = None,
    chunk_tokens: int | None = None,
    show_progress: bool = True,
) -> ImportResult:
    """Copy the token files into ``tokens_out`` (``out_dtype``) and write the document index.

    Files are concatenated in the given order. A file whose last token is not EOS gets one
    appended, so no document runs into the next file's first one. The fingerprint is the
    sha256 of the written tokens and then ``tokenizer_json``, as ``prepare_corpus`` defines it.
    """
    from tqdm.auto import tqdm

    chunk_tokens = chunk_tokens or CHUNK_TOKENS
    if not 0 <= eos_id < vocab_size:
        raise InputError(None, "--eos-id", f"expected an id below the tokenizer's vocabulary size {vocab_size}, got {eos_id}")
    sources = [open_token_file(Path(f), dtype) for f in files]
    eos = np.array([eos_id], dtype=out_dtype)
    starts_tmp = documents_out.with_name(documents_out.name + ".starts")
    n_written = 0
    n_documents = 0
    with tokens_out.open("wb") as out, starts_tmp.open("wb") as starts, tqdm(
        total=sum(s.n_tokens for s in sources), desc="importing tokens", unit="tok", unit_scale=True,
        disable=not show_progress, file=sys.stderr, mininterval=0.5,
    ) as bar:  # fmt: skip
        writer = _HashingWriter(out)
        np.zeros(1, np.int64).tofile(starts)  # the first document starts at 0
        try:
            for source in sources:
                last = None
                with source.path.open("rb") as fh:
                    fh.seek(source.offset)
                    done = 0
                    while done < source.n_tokens:
                        chunk = np.fromfile(fh, dtype=source.dtype, count=min(chunk_tokens, source.n_tokens - done))
                        if len(chunk) == 0:
                            raise InputError(source.path, None, f"expected {source.n_tokens} tokens, the file ended after {done}")
                        top = int(chunk.max())
                        if top >= vocab_size:
                            at = done + int(np.flatnonzero(chunk >= vocab_size)[0])
                            raise InputError(source.path, f"token {at}", f"expected ids below the tokenizer's vocabulary size {vocab_size}, got {top}")
                        ends = np.flatnonzero(chunk == eos_id)
                        (ends + (n_written + 1)).astype(np.int64).tofile(starts)
                        n_documents += len(ends)
                        writer.write(chunk.astype(out_dtype, copy=False))  # no copy when the dtypes agree
                        n_written += len(chunk)
                        done += len(chunk)
                        last = int(chunk[-1])
                        bar.update(len(chunk))
                if last is not None and last != eos_id:
                    writer.write(eos)
                    n_written += 1
                    n_documents += 1
                    np.array([n_written], np.int64).tofile(starts)
        finally:
            writer.close()
    if n_written == 0:
        starts_tmp.unlink()
        raise InputError(files[0] if files else None, None, "expected at least one token")
    _starts_to_npy(starts_tmp, documents_out, n_documents + 1)
    starts_tmp.unlink()
    writer.digest.update(Path(tokenizer_json).read_bytes())
    return ImportResult(n_tokens=n_written, n_documents=n_documents, fingerprint=writer.digest.hexdigest())


def _starts_to_npy(raw: Path, out: Path, count: int) -> None:
    """Turn the raw int64 starts into ``documents.npy``: a header, then the bytes copied in chunks."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<i8")), "fortran_order": False, "shape": (count,)}
    with raw.open("rb") as src, out.open("wb") as dst:
        np.lib.format.write_array_header_1_0(dst, header)
        for block in iter(lambda: src.read(1 << 22), b""):
            dst.write(block)


def is_token_file(path: Path) -> bool:
    return path.suffix in SUFFIXES
