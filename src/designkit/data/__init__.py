"""Token corpora and tokenizers (numpy + tokenizers; no torch)."""

from designkit.data.corpus import TokenCorpus, prepare_corpus
from designkit.data.tokenizer import TextTokenizer, train_bpe_tokenizer

__all__ = ["TokenCorpus", "TextTokenizer", "prepare_corpus", "train_bpe_tokenizer"]
