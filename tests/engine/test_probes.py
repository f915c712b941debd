"""Probes: hand-checkable values on stub models, and batched == one-at-a-time on a real GPT."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from designkit.plan_types import ProbeSpec
from designkit.probes import PROBES, GreedyRequest, SpanRequest
from designkit.probes.greedy import greedy_columns
from designkit.probes.multiple_choice import multiple_choice_columns
from designkit.probes.text_loss import min_k_count, min_k_mean
from engine.probes import (
    greedy_decode,
    greedy_decode_reference,
    score_probes,
    score_probes_reference,
    span_logprobs,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the built-in probe types, configured; their inputs carry every per-item value
PROBE = {name: PROBES.get(name)(ProbeSpec(name, name, {"max_new_tokens": 1})) for name in ("logprob", "multiple_choice", "greedy", "text_loss")}


def job(probe_type: str, **fields):
    """A (probe, input) pair of a built-in probe type."""
    probe = PROBE[probe_type]
    return probe, probe.Input(**fields)

EOS = 0


class BigramStub(torch.nn.Module):
    """Logits depend only on the current token: ``logits[b, t] = table[idx[b, t]]``.

    Same call signature as ``litgpt.model.GPT``; the KV cache is a no-op because no
    position looks back.
    """

    def __init__(self, table: torch.Tensor, max_seq_length: int = 64):
        super().__init__()
        self.register_buffer("table", table.float())
        self.max_seq_length = max_seq_length
        self.calls = 0

    def forward(self, idx, input_pos=None, input_pos_maxp1=None):
        self.calls += 1
        return self.table[idx]

    def set_kv_cache(self, batch_size, max_seq_length=None, rope_cache_length=None, device=None, dtype=None):
        pass

    def clear_kv_cache(self):
        pass


# P(next | current) for a 4-token vocabulary; logits = log P, so log-softmax returns log P
P = np.array(
    [
        [0.10, 0.50, 0.20, 0.20],  # after EOS (token 0)
        [0.25, 0.25, 0.40, 0.10],
        [0.05, 0.15, 0.20, 0.60],
        [0.30, 0.30, 0.30, 0.10],
    ]
)


@pytest.fixture
def bigram():
    return BigramStub(torch.tensor(np.log(P)))


def successor_stub(vocab: int = 16) -> BigramStub:
    """Always predicts ``next = current + 1 (mod vocab)``."""
    table = torch.full((vocab, vocab), -5.0)
    for t in range(vocab):
        table[t, (t + 1) % vocab] = 5.0
    return BigramStub(table)


def test_logprob_sums_log_probabilities_after_eos_and_prompt(bigram):
    [row] = score_probes(bigram, [job("logprob", prompt=(1,), target=(2, 3))], eos_id=EOS)
    expected = math.log(P[1, 2]) + math.log(P[2, 3])
    assert row["logprob"] == pytest.approx(expected, abs=1e-6)
    assert row["logprob_per_token"] == pytest.approx(expected / 2, abs=1e-6)
    assert row["n_target_tokens"] == 2


def test_logprob_with_empty_prompt_is_conditioned_on_eos_alone(bigram):
    [row] = score_probes(bigram, [job("logprob", prompt=(), target=(1, 2))], eos_id=EOS)
    assert row["logprob"] == pytest.approx(math.log(P[0, 1]) + math.log(P[1, 2]), abs=1e-6)


def test_multiple_choice_columns_match_hand_computation(bigram):
    choices = ((2,), (3, 3), (1, 2))
    [row] = score_probes(bigram, [job("multiple_choice", prompt=(1,), choices=choices, gold=2)], eos_id=EOS)
    sums = [math.log(P[1, 2]), math.log(P[1, 3]) + math.log(P[3, 3]), math.log(P[1, 1]) + math.log(P[1, 2])]
    norms = [sums[0], sums[1] / 2, sums[2] / 2]
    assert row["choice_logprobs"] == pytest.approx(sums, abs=1e-6)
    assert row["choice_logprobs_norm"] == pytest.approx(norms, abs=1e-6)
    assert row["chosen"] == int(np.argmax(sums)) == 0
    assert row["chosen_norm"] == int(np.argmax(norms)) == 0
    assert row["correct"] is False and row["correct_norm"] is False
    assert row["gold_logprob_norm"] == pytest.approx(norms[2], abs=1e-6)
    assert row["margin"] == pytest.approx(norms[2] - (norms[0] + norms[1]) / 2, abs=1e-6)


def test_multiple_choice_without_gold_ranks_but_does_not_grade():
    row = multiple_choice_columns([np.array([-2.0]), np.array([-0.5, -0.5])], None)
    assert row["chosen"] == 1 and row["chosen_norm"] == 1
    assert row["correct"] is None and math.isnan(row["margin"])


def test_multiple_choice_ranks_empty_choice_last_by_normalised_score():
    row = multiple_choice_columns([np.array([]), np.array([-3.0])], 1)
    assert row["chosen"] == 0  # an empty continuation has summed log-prob 0
    assert row["chosen_norm"] == 1 and row["correct_norm"] is True


def test_text_loss_columns_match_hand_computation(bigram):
    tokens = (1, 2, 3, 1, 2)
    text = "hand checked text"
    [row] = score_probes(bigram, [job("text_loss", tokens=tokens, text=text, min_k=0.4)], eos_id=EOS)
    context = (EOS, *tokens)
    lps = [math.log(P[a, b]) for a, b in zip(context[:-1], context[1:])]
    assert row["n_tokens"] == 5
    assert row["loss"] == pytest.approx(-sum(lps) / 5, abs=1e-6)
    assert row["zlib_ratio"] == pytest.approx(-sum(lps) / len(zlib.compress(text.encode("utf-8"))), abs=1e-6)
    assert row["min_k_logprob"] == pytest.approx(np.mean(sorted(lps)[:2]), abs=1e-6)


def test_text_loss_without_text_has_nan_zlib_ratio(bigram):
    [row] = score_probes(bigram, [job("text_loss", tokens=(1, 2))], eos_id=EOS)
    assert math.isnan(row["zlib_ratio"]) and not math.isnan(row["loss"])


@pytest.mark.parametrize(("n", "share", "k"), [(15, 0.2, 3), (100, 0.29, 29), (3, 0.2, 1), (1, 0.2, 1), (10, 1.0, 10)])
def test_min_k_averages_at_least_one_token(n, share, k):
    assert min_k_count(n, share) == k


def test_min_k_mean_takes_the_lowest_log_probs():
    assert min_k_mean(np.array([-0.1, -2.0, -0.5, -3.0, -1.0]), 0.4) == pytest.approx(-2.5)
    assert math.isnan(min_k_mean(np.array([]), 0.2))


def test_greedy_reproduces_known_continuation():
    model = successor_stub()
    probes = [
        job("greedy", prompt=(5, 6), reference=(7, 8, 9), max_new_tokens=3),
        job("greedy", prompt=(5, 6), reference=(7, 8, 0, 10), max_new_tokens=4),
        job("greedy", prompt=(14,), reference=(15, 0, 1), max_new_tokens=8),
        job("greedy", prompt=(3,), reference=(9, 5), max_new_tokens=2),
    ]
    rows = score_probes(model, probes, eos_id=EOS)
    assert [r["exact_match"] for r in rows] == [True, False, True, False]
    assert [r["prefix_match"] for r in rows] == [3, 2, 3, 0]
    assert [r["n_reference"] for r in rows] == [3, 4, 3, 2]
    assert rows == score_probes_reference(model, probes, eos_id=EOS)


def test_greedy_cannot_match_beyond_max_new_tokens():
    [row] = score_probes(successor_stub(), [job("greedy", prompt=(1,), reference=(2, 3, 4), max_new_tokens=2)], eos_id=EOS)
    assert row["prefix_match"] == 2 and row["exact_match"] is False


def test_greedy_columns_of_empty_reference():
    assert greedy_columns([], []) == {"exact_match": True, "prefix_match": 0, "n_reference": 0}


def test_every_probe_type_writes_exactly_its_columns(bigram):
    probes = [
        job("logprob", prompt=(1,), target=(2,)),
        job("multiple_choice", prompt=(1,), choices=((2,), (3,)), gold=0),
        job("greedy", prompt=(1,), reference=(2,), max_new_tokens=1),
        job("text_loss", tokens=(1, 2), text="ab"),
    ]
    for (probe, _), row in zip(probes, score_probes(bigram, probes, eos_id=EOS)):
        assert tuple(row) == probe.column_names()


def test_span_batches_respect_the_token_budget(bigram):
    requests = [SpanRequest((EOS, 1, 2, 3), 1) for _ in range(10)]
    bigram.calls = 0
    span_logprobs(bigram, requests, batch_tokens=6)  # input length 3: two rows per batch
    assert bigram.calls == 5


def test_probe_longer_than_the_model_context_is_refused(bigram):
    bigram.max_seq_length = 3
    with pytest.raises(ValueError, match="at most the model's 3 tokens"):
        score_probes(bigram, [job("text_loss", tokens=(1, 2, 3, 1))], eos_id=EOS)


# ---------------------------------------------------------------------------------------
# batched == reference on a real litgpt GPT


@pytest.fixture(scope="module")
def gpt():
    from litgpt.config import Config
    from litgpt.model import GPT

    torch.manual_seed(0)
    config = Config(
        name="probe-test", block_size=48, vocab_size=40, padded_vocab_size=40, n_layer=2, n_head=2, n_embd=32,
        bias=False, rotary_percentage=1.0, parallel_residual=False, norm_class_name="RMSNorm",
        mlp_class_name="LLaMAMLP", intermediate_size=64,
    )
    model = GPT(config)
    # large weights give peaked, far-from-uniform distributions: few argmax near-ties
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.4)
    return model.eval()


def _random_probes(seed: int, vocab: int = 40) -> list:
    rng = np.random.default_rng(seed)

    def toks(lo, hi):
        return tuple(int(t) for t in rng.integers(1, vocab, size=int(rng.integers(lo, hi + 1))))

    probes = []
    for _ in range(12):
        probes.append(job("logprob", prompt=toks(0, 12), target=toks(1, 8)))
        n_choices = int(rng.integers(2, 5))
        probes.append(job("multiple_choice", prompt=toks(1, 10), choices=tuple(toks(1, 6) for _ in range(n_choices)),
                          gold=int(rng.integers(n_choices))))
        probes.append(job("greedy", prompt=toks(1, 5), reference=toks(1, 10), max_new_tokens=int(rng.integers(1, 12))))
        probes.append(job("text_loss", tokens=toks(1, 40), text=f"text {rng.integers(1000)}", min_k=0.2))
    return probes


def assert_rows_close(batched, reference, atol=1e-5):
    assert len(batched) == len(reference)
    for got, want in zip(batched, reference):
        assert got.keys() == want.keys()
        for column in got:
            a, b = got[column], want[column]
            if isinstance(b, float) or isinstance(b, list):
                np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=column)
            else:
                assert a == b, column


@pytest.mark.parametrize("batch_tokens", [40, 256, 100_000])
def test_batched_probes_equal_unbatched_reference(gpt, batch_tokens):
    probes = _random_probes(1)
    reference = score_probes_reference(gpt, probes, eos_id=EOS)
    assert_rows_close(score_probes(gpt, probes, eos_id=EOS, batch_tokens=batch_tokens), reference)


def test_padding_does_not_leak_into_short_sequences(gpt):
    short = SpanRequest((EOS, 3, 4, 5), 1)
    long = SpanRequest((EOS, *range(1, 40)), 1)
    [alone] = span_logprobs(gpt, [short])
    together = span_logprobs(gpt, [long, short, long], batch_tokens=10_000)
    np.testing.assert_allclose(together[1], alone, rtol=0, atol=1e-6)


def test_batched_greedy_with_kv_cache_equals_full_recompute(gpt):
    rng = np.random.default_rng(7)
    requests = [GreedyRequest((EOS, *rng.integers(1, 40, size=int(rng.integers(0, 6))).tolist()), int(rng.integers(1, 20)))
                for _ in range(30)]
    batched = greedy_decode(gpt, requests, batch_tokens=64)
    for request, got in zip(requests, batched):
        np.testing.assert_array_equal(got, greedy_decode_reference(gpt, request))
    assert gpt.mask_cache is None  # the KV cache is released after decoding


def test_batched_scores_are_deterministic(gpt):
    probes = _random_probes(2)
    assert score_probes(gpt, probes, eos_id=EOS) == score_probes(gpt, probes, eos_id=EOS)
