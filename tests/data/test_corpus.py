import json

import numpy as np
import pandas as pd
import pytest

from designkit.cli import main
from designkit.data.corpus import TokenCorpus, prepare_corpus, token_dtype
from designkit.data.stdlib_docs import iter_stdlib_documents
from designkit.errors import InputError

DOCS = ["The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs.", "How vexingly quick daft zebras jump!"]


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bpe")
    src = root / "src.jsonl"
    src.write_text("\n".join(json.dumps({"text": d}) for d in list(iter_stdlib_documents())[:60]) + "\n")
    prepare_corpus(src, root / "corpus", train_vocab=400, show_progress=False)
    return root / "corpus"


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "parquet"])
def test_every_source_format_gives_the_same_tokens_and_document_index(tmp_path, bpe_dir, fmt):
    src = tmp_path / "src"
    src.mkdir()
    if fmt == "txt":
        for i, doc in enumerate(DOCS):
            (src / f"{i}.txt").write_text(doc)
    elif fmt == "jsonl":
        (src / "d.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in DOCS))
    else:
        pd.DataFrame({"text": DOCS}).to_parquet(src / "d.parquet")
    corpus = prepare_corpus(src, tmp_path / "out", tokenizer_dir=bpe_dir, show_progress=False)
    tokenizer = corpus.tokenizer()
    assert corpus.meta["n_documents"] == 3 and corpus.tokens.dtype == np.uint16
    for i, doc in enumerate(DOCS):
        start, end = corpus.documents[i], corpus.documents[i + 1]
        assert corpus.tokens[end - 1] == corpus.eos_id
        assert tokenizer.decode(corpus.tokens[start : end - 1].tolist()) == doc
    assert corpus.documents[-1] == corpus.n_tokens


def test_fingerprint_is_stable_and_tracks_content(tmp_path, bpe_dir):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in DOCS))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in DOCS[:2]))
    a1 = prepare_corpus(tmp_path / "a.jsonl", tmp_path / "a1", tokenizer_dir=bpe_dir, show_progress=False)
    a2 = prepare_corpus(tmp_path / "a.jsonl", tmp_path / "a2", tokenizer_dir=bpe_dir, show_progress=False)
    b = prepare_corpus(tmp_path / "b.jsonl", tmp_path / "b", tokenizer_dir=bpe_dir, show_progress=False)
    assert a1.fingerprint == a2.fingerprint != b.fingerprint


def test_large_vocabularies_use_uint32(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(70_000)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "tok").mkdir()
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    (tmp_path / "tok" / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "tokenizer_class": "PreTrainedTokenizerFast"}))
    (tmp_path / "d.txt").write_text("w5 w69999 w12")
    corpus = prepare_corpus(tmp_path / "d.txt", tmp_path / "out", tokenizer_dir=tmp_path / "tok", show_progress=False)
    assert corpus.tokens.dtype == np.uint32
    assert corpus.tokens.tolist() == [7, 70001, 14, 0]
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


def test_trained_tokenizer_loads_in_litgpt_with_the_same_ids(bpe_dir):
    from litgpt.tokenizer import Tokenizer as LitTokenizer

    ours = TokenCorpus.open(bpe_dir).tokenizer()
    theirs = LitTokenizer(bpe_dir)
    text = "Return the value of the attribute."
    assert theirs.encode(text).tolist() == ours.encode(text)
    assert theirs.eos_id == ours.eos_id == TokenCorpus.open(bpe_dir).eos_id
    assert theirs.decode(theirs.encode(text)) == text


def test_builtin_stdlib_docs_is_real_english_of_about_two_megabytes():
    docs = list(iter_stdlib_documents())
    size = sum(len(d) for d in docs)
    assert 1_000_000 < size < 6_000_000
    assert sum(d.count(" the ") for d in docs) > 5_000


def test_prepare_corpus_cli_refuses_to_overwrite_and_reports_bad_sources(tmp_path, bpe_dir, capsys):
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": DOCS[0]}) + "\n")
    out = tmp_path / "out"
    assert main(["prepare-corpus", str(tmp_path / "d.jsonl"), "--out", str(out), "--tokenizer", str(bpe_dir), "--quiet"]) == 0
    assert "tokens in 1 documents" in capsys.readouterr().out
    before = (out / "tokens.bin").read_bytes()
    assert main(["prepare-corpus", str(tmp_path / "d.jsonl"), "--out", str(out), "--tokenizer", str(bpe_dir), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "tokens.bin").read_bytes() == before
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"nope": 1}\n')
    assert main(["prepare-corpus", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o2"), "--tokenizer", str(bpe_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "text" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists()


def test_unprepared_directory_is_refused(tmp_path):
    with pytest.raises(InputError, match="prepare-corpus"):
        TokenCorpus.open(tmp_path)
