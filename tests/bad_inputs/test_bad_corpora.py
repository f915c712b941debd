"""Bad corpus sources, tokenizers and output locations for ``designkit prepare-corpus``, and broken
prepared corpora read by ``designkit plan``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .harness import copy_tree, edit_design, refused, rewrite_json, write_jsonl, write_yaml

DOCS = [{"text": f"Document number {i} talks about parsers, tokens and the standard library."} for i in range(20)]


def _source(root: Path, name: str = "docs.jsonl", records=DOCS) -> Path:
    return write_jsonl(root / name, records)


def _tokenizer_dir(root: Path, tiny_corpus: Path) -> Path:
    target = root / "tok"
    target.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tiny_corpus / name, target / name)
    return target


def _prepare(source, out, *extra) -> list:
    return ["prepare-corpus", source, "--out", out, "--quiet", *extra]


# id: builder(root, tiny_corpus) -> (argv, file the message names, key)
def _missing_source(root, corpus):
    return _prepare(root / "nope.jsonl", root / "out", "--train-tokenizer", 400), "nope.jsonl", None


def _wrong_suffix(root, corpus):
    (root / "docs.csv").write_text("text\nhello\n")
    return _prepare(root / "docs.csv", root / "out", "--train-tokenizer", 400), "docs.csv", None


def _empty_directory(root, corpus):
    (root / "src").mkdir()
    (root / "src" / "notes.md").write_text("# not a corpus file\n")
    return _prepare(root / "src", root / "out", "--train-tokenizer", 400), "src", None


def _empty_txt(root, corpus):
    (root / "empty.txt").write_bytes(b"")
    return _prepare(root / "empty.txt", root / "out", "--train-tokenizer", 400), "empty.txt", None


def _blank_txt(root, corpus):
    (root / "blank.txt").write_text("  \n\n\t\n")
    return _prepare(root / "blank.txt", root / "out", "--train-tokenizer", 400), "blank.txt", None


def _jsonl_of_empty_texts(root, corpus):
    source = write_jsonl(root / "docs.jsonl", [{"text": ""}] * 5)
    return _prepare(source, root / "out", "--train-tokenizer", 400), "docs.jsonl", None


def _txt_non_utf8(root, corpus):
    (root / "latin1.txt").write_bytes("Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9.\n".encode("latin-1"))
    return _prepare(root / "latin1.txt", root / "out", "--train-tokenizer", 400), "latin1.txt", "line 1"


def _jsonl_non_utf8(root, corpus):
    path = _source(root)
    path.write_bytes(path.read_bytes() + b'{"text": "caf\xe9"}\n')
    return _prepare(path, root / "out", "--train-tokenizer", 400), "docs.jsonl", "line 21"


def _jsonl_not_json(root, corpus):
    path = _source(root)
    path.write_bytes(path.read_bytes() + b"{text: unquoted}\n")
    return _prepare(path, root / "out", "--train-tokenizer", 400), "docs.jsonl:21", None


def _jsonl_missing_key(root, corpus):
    path = _source(root, records=[*DOCS, {"body": "no text key"}])
    return _prepare(path, root / "out", "--train-tokenizer", 400), "docs.jsonl:21", "text"


def _jsonl_text_not_string(root, corpus):
    path = _source(root, records=[*DOCS, {"text": 42}])
    return _prepare(path, root / "out", "--train-tokenizer", 400), "docs.jsonl:21", "text"


def _jsonl_other_text_key(root, corpus):
    path = _source(root)
    return _prepare(path, root / "out", "--train-tokenizer", 400, "--text-key", "body"), "docs.jsonl:1", "body"


def _parquet_garbage(root, corpus):
    (root / "docs.parquet").write_bytes(b"PAR1 definitely not a parquet file PAR1")
    return _prepare(root / "docs.parquet", root / "out", "--train-tokenizer", 400), "docs.parquet", None


def _parquet_missing_column(root, corpus):
    pq.write_table(pa.table({"body": ["a", "b"]}), root / "docs.parquet")
    return _prepare(root / "docs.parquet", root / "out", "--train-tokenizer", 400), "docs.parquet", "text"


def _parquet_numbers(root, corpus):
    pq.write_table(pa.table({"text": [1, 2, 3]}), root / "docs.parquet")
    return _prepare(root / "docs.parquet", root / "out", "--train-tokenizer", 400), "docs.parquet", "text"


def _unknown_builtin(root, corpus):
    return _prepare("builtin:wikipedia", root / "out", "--train-tokenizer", 400), None, "corpus"


def _out_is_a_file(root, corpus):
    (root / "corpus").write_text("my notes\n")
    return _prepare(_source(root), root / "corpus", "--train-tokenizer", 400), "corpus", "--out"


def _out_under_proc(root, corpus):
    return _prepare(_source(root), "/proc/designkit-corpus", "--train-tokenizer", 400), "/proc/designkit-corpus", "--out"


def _out_under_a_file(root, corpus):
    (root / "notes.txt").write_text("my notes\n")
    return _prepare(_source(root), root / "notes.txt" / "corpus", "--train-tokenizer", 400), "notes.txt", "--out"


def _out_non_empty_user_dir(root, corpus):
    (root / "mydocs").mkdir()
    (root / "mydocs" / "thesis.tex").write_text("\\documentclass{article}\n")
    return _prepare(_source(root), root / "mydocs", "--train-tokenizer", 400), "mydocs", "--out"


def _force_on_user_dir(root, corpus):
    (root / "mydocs").mkdir()
    (root / "mydocs" / "thesis.tex").write_text("\\documentclass{article}\n")
    return _prepare(_source(root), root / "mydocs", "--train-tokenizer", 400, "--force"), "mydocs", None


def _train_vocab_too_small(root, corpus):
    return _prepare(_source(root), root / "out", "--train-tokenizer", 10), None, "--train-tokenizer"


def _train_vocab_negative(root, corpus):
    return _prepare(_source(root), root / "out", "--train-tokenizer", -5), None, "--train-tokenizer"


def _train_vocab_beyond_int64(root, corpus):
    return _prepare(_source(root), root / "out", "--train-tokenizer", 10**30), None, "--train-tokenizer"


def _tokenizer_dir_without_tokenizer(root, corpus):
    (root / "tok").mkdir()
    return _prepare(_source(root), root / "out", "--tokenizer", root / "tok"), str(root / "tok"), "tokenizer.json"


def _tokenizer_json_garbage(root, corpus):
    tok = _tokenizer_dir(root, corpus)
    (tok / "tokenizer.json").write_text('{"version": "1.0", "model": "nonsense"}')
    return _prepare(_source(root), root / "out", "--tokenizer", tok), "tok/tokenizer.json", None


def _tokenizer_json_binary(root, corpus):
    tok = _tokenizer_dir(root, corpus)
    (tok / "tokenizer.json").write_bytes(b"\x00\xff\xfe garbage")
    return _prepare(_source(root), root / "out", "--tokenizer", tok), "tok/tokenizer.json", None


def _tokenizer_config_garbage(root, corpus):
    tok = _tokenizer_dir(root, corpus)
    (tok / "tokenizer_config.json").write_text("{not json")
    return _prepare(_source(root), root / "out", "--tokenizer", tok), "tokenizer_config.json", None


def _tokenizer_eos_not_in_vocab(root, corpus):
    tok = _tokenizer_dir(root, corpus)
    rewrite_json(tok / "tokenizer_config.json", lambda c: c.update(eos_token="<|no-such-token|>"))
    return _prepare(_source(root), root / "out", "--tokenizer", tok), "tokenizer_config.json", "eos_token"


PREPARE = {name[1:]: fn for name, fn in list(globals().items()) if name.startswith("_") and callable(fn) and name not in ("_source", "_tokenizer_dir", "_prepare")}
@pytest.mark.parametrize("case", sorted(PREPARE))
def test_bad_prepare_corpus_is_refused_with_one_line(case, tmp_path, tiny_corpus, capsys):
    argv, file, key = PREPARE[case](tmp_path, tiny_corpus)
    refused(argv, capsys, tmp_path, file=file, key=key)


# broken prepared corpora, read when planning: id -> (break(corpus dir), file the message names, key)
def _write(name: str, data: bytes):
    return lambda corpus: (corpus / name).write_bytes(data)


def _objects_npy(corpus: Path) -> None:
    np.save(corpus / "documents.npy", np.array([0, {"a": 1}, "x"], dtype=object), allow_pickle=True)


BROKEN = {
    "corpus_json_garbage": (_write("corpus.json", b"{\"format\": "), "corpus.json", None),
    "corpus_json_a_list": (_write("corpus.json", b"[1, 2, 3]"), "corpus.json", None),
    "corpus_json_non_utf8": (_write("corpus.json", b"{\"format\": \"\xff\"}"), "corpus.json", None),
    "corpus_json_wrong_format": (lambda c: rewrite_json(c / "corpus.json", lambda m: m.update(format="other/9")), "corpus.json", "format"),
    "corpus_json_without_n_tokens": (lambda c: rewrite_json(c / "corpus.json", lambda m: m.pop("n_tokens") and None), "corpus.json", "n_tokens"),
    "corpus_json_bad_dtype": (lambda c: rewrite_json(c / "corpus.json", lambda m: m.update(dtype="object")), "corpus.json", "dtype"),
    "corpus_json_eos_beyond_vocab": (lambda c: rewrite_json(c / "corpus.json", lambda m: m.update(eos_id=10**6)), "corpus.json", "eos_id"),
    "tokens_truncated": (lambda c: (c / "tokens.bin").write_bytes((c / "tokens.bin").read_bytes()[:-10]), "tokens.bin", None),
    "documents_npy_objects": (_objects_npy, "documents.npy", None),
    "documents_npy_garbage": (_write("documents.npy", b"\x93NUMPY garbage"), "documents.npy", None),
    "documents_npy_missing": (lambda c: (c / "documents.npy").unlink(), "documents.npy", None),
    "documents_npy_wrong_end": (lambda c: np.save(c / "documents.npy", np.array([0, 5], dtype=np.int64)), "documents.npy", None),
    "documents_npy_floats": (lambda c: np.save(c / "documents.npy", np.array([0.0, 1.5])), "documents.npy", None),
    "tokenizer_json_garbage": (_write("tokenizer.json", b"{\"model\": 3}"), "tokenizer.json", None),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_prepared_corpus_is_refused_with_one_line(case, tmp_path, tiny_corpus, valid_design, capsys):
    breaks, file, key = BROKEN[case]
    corpus = copy_tree(tiny_corpus, tmp_path / "corpus")
    breaks(corpus)
    design = write_yaml(tmp_path / "design.yaml", edit_design(valid_design, lambda d: d["run"].update(corpus="corpus")))
    refused(["plan", design, "--out", tmp_path / "plan", "--quiet"], capsys, tmp_path, file=file, key=key)


def test_empty_corpus_source_is_refused_not_a_one_token_corpus(tmp_path, capsys):
    (tmp_path / "empty.txt").write_bytes(b"")
    result = refused(_prepare(tmp_path / "empty.txt", tmp_path / "out", "--train-tokenizer", 400), capsys, tmp_path, file="empty.txt", key=None)
    assert "non-empty document" in result.message
