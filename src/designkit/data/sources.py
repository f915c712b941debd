"""Read raw text documents from the file types ``prepare-corpus`` accepts."""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from designkit.data import stdlib_docs
from designkit.errors import InputError, quote

BUILTIN_PREFIX = "builtin:"
TEXT_SUFFIXES = (".txt", ".jsonl", ".parquet")
TOKEN_SUFFIXES = (".npy", ".bin")
"""Already-tokenized files (``designkit.data.pretokenized``)."""
SUFFIXES = TEXT_SUFFIXES + TOKEN_SUFFIXES


def _utf8(data: bytes, path: Path | str, line_no: int | None = None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line_no if line_no is not None else data.count(b"\n", 0, exc.start) + 1
        raise InputError(path, f"line {line}", f"expected UTF-8 text, got the byte {data[exc.start:exc.start + 1]!r}") from None


def _iter_txt(path: Path, key: str) -> Iterator[str]:
    # A .txt file is one document, as in most raw-text corpora; an empty one is none.
    text = _utf8(path.read_bytes(), path)
    if text.strip():
        yield text


def iter_jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line; errors name the file and line."""
    with Path(path).open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            line = _utf8(raw, path, line_no)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{line_no}", None, f"expected one JSON object per line ({exc.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{line_no}", None, "expected a JSON object")
            yield line_no, record


def _iter_jsonl(path: Path, key: str) -> Iterator[str]:
    for line_no, record in iter_jsonl_records(path):
        text = record.get(key)
        if not isinstance(text, str):
            raise InputError(f"{path}:{line_no}", key, f"expected a string field {key!r}")
        if text.strip():
            yield text


def _parquet_error(path: Path, exc: Exception) -> InputError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(path, None, f"expected a readable parquet file ({reason[:120]})")


def read_parquet_records(path: Path) -> list[dict]:
    """Every row of a .parquet file as a dict; a file that is not parquet is one InputError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise _parquet_error(path, exc) from None


def _iter_parquet(path: Path, key: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except (OSError, pa.ArrowException) as exc:
        raise _parquet_error(path, exc) from None
    if key not in names:
        raise InputError(path, key, f"expected a text column {key!r}, found {names}")
    try:
        for batch in parquet.iter_batches(columns=[key], batch_size=4096):
            for row, text in enumerate(batch.column(0).to_pylist()):
                if text is not None and not isinstance(text, str):
                    raise InputError(path, key, f"expected a string column, got {type(text).__name__} values")
                if text and text.strip():
                    yield text
    except (OSError, pa.ArrowException) as exc:
        raise _parquet_error(path, exc) from None


_READERS: dict[str, Callable[[Path, str], Iterator[str]]] = {
    ".txt": _iter_txt,
    ".jsonl": _iter_jsonl,
    ".parquet": _iter_parquet,
}


def source_files(source: str | Path) -> list[Path]:
    """The files of a source: one file, every matching file under a directory, or a glob
    pattern such as ``'data/*.parquet'`` (``**`` recurses), in sorted order."""
    text = str(source)
    path = Path(source)
    if any(c in text for c in "*?[") and not path.exists():
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file() and Path(p).suffix in SUFFIXES)
        if not files:
            raise InputError(text, None, f"expected the pattern to match {', '.join(SUFFIXES)} files, found none")
        return files
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise InputError(path, None, f"expected a directory holding {', '.join(SUFFIXES)} files, found none")
        return files
    if not path.is_file():
        raise InputError(path, None, "expected an existing file, directory or glob pattern")
    if path.suffix not in SUFFIXES:
        raise InputError(path, None, f"expected a {', '.join(SUFFIXES)} file, got {quote(path.suffix)}")
    return [path]


def is_pretokenized(files: list[Path]) -> bool:
    """True if every file holds token ids, False if every file holds text; InputError for a mix."""
    tokens = [f.suffix in TOKEN_SUFFIXES for f in files]
    if any(tokens) and not all(tokens):
        raise InputError(files[tokens.index(True)], None, f"expected either text files ({', '.join(TEXT_SUFFIXES)}) or token files ({', '.join(TOKEN_SUFFIXES)}), not both in one source")
    return all(tokens)


def iter_documents(source: str | Path, text_key: str = "text") -> Iterator[str]:
    """Yield documents from a builtin name, a file, or a directory of files (sorted)."""
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX) :]
        if name != stdlib_docs.BUILTIN_NAME:
            raise InputError(None, "corpus", f"expected builtin:{stdlib_docs.BUILTIN_NAME}, got {quote(source)}")
        yield from stdlib_docs.iter_stdlib_documents()
        return
    files = source_files(source)
    if is_pretokenized(files):
        raise InputError(files[0], None, "expected text, got token ids (prepare-corpus imports them as they are)")
    for path in files:
        yield from _READERS[path.suffix](path, text_key)
