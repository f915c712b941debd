"""prepare-corpus imports token memmaps (.npy, raw .bin) without re-tokenizing: same tokens, same documents."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from designkit.cli import main
from designkit.data import pretokenized
from designkit.data.corpus import TokenCorpus, prepare_corpus


@pytest.fixture(scope="module")
def big_vocab(tmp_path_factory):
    """A 70,002-id word-level tokenizer (EOS = 0): its ids need uint32."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    root = tmp_path_factory.mktemp("big-vocab")
    vocab = {"<|endoftext|>": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(70_000)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(root / "tokenizer.json"))
    (root / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    return root


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
    """A 400-id byte-level BPE: its ids fit uint16."""
    from designkit.data.stdlib_docs import write_jsonl

    root = tmp_path_factory.mktemp("small-vocab")
    source = write_jsonl(root / "docs.jsonl", max_documents=40)
    return prepare_corpus(source, root / "corpus", train_vocab=400, show_progress=False).path


def _documents(rng, vocab: int, eos: int, n: int) -> list[np.ndarray]:
    docs = []
    for _ in range(n):
        doc = rng.integers(1, vocab, size=int(rng.integers(0, 40)))
        doc[doc == eos] = eos + 1
        docs.append(doc)
    return docs


def _stream(docs, eos, dtype) -> np.ndarray:
    return np.concatenate([np.r_[d, eos] for d in docs]).astype(dtype)


def _assert_same_documents(corpus: TokenCorpus, docs: list[np.ndarray]) -> None:
    assert corpus.meta["n_documents"] == len(docs) == len(corpus.documents) - 1
    for i, doc in enumerate(docs):
        start, end = int(corpus.documents[i]), int(corpus.documents[i + 1])
        assert corpus.tokens[start : end - 1].tolist() == doc.tolist()
        assert corpus.tokens[end - 1] == corpus.eos_id
    assert corpus.documents[-1] == corpus.n_tokens


def test_a_uint32_memmap_round_trips_with_its_documents(tmp_path, big_vocab, monkeypatch):
    monkeypatch.setattr(pretokenized, "CHUNK_TOKENS", 97)  # many chunks, EOS ids on their edges
    rng = np.random.default_rng(0)
    docs = _documents(rng, 70_002, 0, 200)
    stream = _stream(docs, 0, np.uint32)
    np.save(tmp_path / "tokens.npy", stream)
    corpus = prepare_corpus(tmp_path / "tokens.npy", tmp_path / "out", tokenizer_dir=big_vocab, show_progress=False)
    assert corpus.tokens.dtype == np.uint32 and corpus.n_tokens == len(stream)
    assert np.array_equal(np.asarray(corpus.tokens), stream)
    _assert_same_documents(corpus, docs)
    # the fingerprint covers every token, as for a tokenized corpus
    tokens_and_tokenizer = (tmp_path / "out" / "tokens.bin").read_bytes() + (tmp_path / "out" / "tokenizer.json").read_bytes()
    assert corpus.fingerprint == hashlib.sha256(tokens_and_tokenizer).hexdigest() == corpus.content_fingerprint()


def test_a_uint16_bin_round_trips_through_the_cli(tmp_path, small_vocab, monkeypatch, capsys):
    monkeypatch.setattr(pretokenized, "CHUNK_TOKENS", 64)
    eos = TokenCorpus.open(small_vocab).eos_id
    docs = _documents(np.random.default_rng(1), 400, eos, 150)
    _stream(docs, eos, np.uint16).tofile(tmp_path / "train.bin")  # nanoGPT's layout
    code = main(["prepare-corpus", str(tmp_path / "train.bin"), "--out", str(tmp_path / "out"), "--tokenizer", str(small_vocab), "--dtype", "uint16", "--quiet"])
    assert code == 0, capsys.readouterr().err
    corpus = TokenCorpus.open(tmp_path / "out")
    assert corpus.tokens.dtype == np.uint16
    _assert_same_documents(corpus, docs)


def test_headerless_npy_shards_by_glob_are_concatenated_in_order(tmp_path, small_vocab):
    eos = TokenCorpus.open(small_vocab).eos_id
    docs = _documents(np.random.default_rng(2), 400, eos, 60)
    (tmp_path / "shards").mkdir()
    for i, part in enumerate((docs[:20], docs[20:45], docs[45:])):  # Dolma/OLMo: raw memmaps named .npy
        stream = _stream(part, eos, np.uint32)
        if i == 1:
            stream = stream[:-1]  # a shard whose last document lacks its EOS gets one
        stream.tofile(tmp_path / "shards" / f"part-{i:05d}.npy")
    corpus = prepare_corpus(str(tmp_path / "shards" / "part-*.npy"), tmp_path / "out", tokenizer_dir=small_vocab, dtype="uint32", show_progress=False)
    assert corpus.tokens.dtype == np.uint16  # the vocabulary fits: stored narrower than given
    _assert_same_documents(corpus, docs)


def test_documents_split_at_a_given_eos_id(tmp_path, small_vocab):
    np.array([5, 6, 399, 7, 399, 8], np.uint16).tofile(tmp_path / "t.bin")
    corpus = prepare_corpus(tmp_path / "t.bin", tmp_path / "out", tokenizer_dir=small_vocab, dtype="uint16", eos_id=399, show_progress=False)
    assert corpus.eos_id == 399
    assert corpus.documents.tolist() == [0, 3, 5, 7] and corpus.tokens.tolist() == [5, 6, 399, 7, 399, 8, 399]


@pytest.mark.parametrize(
    ("write", "args", "message"),
    [
        (lambda p: np.save(p / "t.npy", np.array([1, 2, 400], np.uint16)), ["t.npy"], "t.npy: token 2: expected ids below the tokenizer's vocabulary size 400, got 400"),
        (lambda p: (p / "t.bin").write_bytes(b"\x01\x00\x02"), ["t.bin", "--dtype", "uint16"], "expected a whole number of uint16 tokens, got 3 bytes"),
        (lambda p: (p / "t.bin").write_bytes(b"\x01\x00"), ["t.bin", "--dtype", "int8"], "--dtype: expected one of uint16, uint32, got 'int8'"),
        (lambda p: (p / "t.bin").write_bytes(b"\x01\x00"), ["t.bin"], "t.bin: --dtype: expected --dtype uint16 or uint32"),
        (lambda p: np.save(p / "t.npy", np.array([1.0, 2.0])), ["t.npy"], "t.npy: dtype: expected a little-endian uint16 or uint32 token array, got float64"),
    ],
)
def test_bad_token_files_are_refused_in_one_line_and_nothing_is_written(tmp_path, small_vocab, capsys, write, args, message):
    write(tmp_path)
    code = main(["prepare-corpus", str(tmp_path / args[0]), *args[1:], "--out", str(tmp_path / "out"), "--tokenizer", str(small_vocab), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_token_files_need_a_tokenizer_dir(tmp_path, capsys):
    np.save(tmp_path / "t.npy", np.array([1, 2], np.uint16))
    code = main(["prepare-corpus", str(tmp_path / "t.npy"), "--out", str(tmp_path / "out"), "--train-tokenizer", "400", "--quiet"])
    assert code == 2 and "--tokenizer: expected --tokenizer DIR" in capsys.readouterr().err


def test_parquet_shards_by_glob_equal_their_directory(tmp_path, small_vocab):
    (tmp_path / "data").mkdir()
    for i in range(3):
        pd.DataFrame({"text": [f"shard {i} document {j}" for j in range(4)]}).to_parquet(tmp_path / "data" / f"{i}.parquet")
    (tmp_path / "data" / "notes.jsonl").write_text(json.dumps({"text": "not matched by the glob"}) + "\n")
    by_glob = prepare_corpus(str(tmp_path / "data" / "*.parquet"), tmp_path / "a", tokenizer_dir=small_vocab, show_progress=False)
    assert by_glob.meta["n_documents"] == 12
    (tmp_path / "data" / "notes.jsonl").unlink()
    by_dir = prepare_corpus(tmp_path / "data", tmp_path / "b", tokenizer_dir=small_vocab, show_progress=False)
    assert by_glob.fingerprint == by_dir.fingerprint
