"""The learning-rate schedule: linear warmup, cosine decay to min_lr, pure in the step."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.schedule import get_lr

LR, MIN_LR = 1e-3, 1e-4


def lr(step, warmup=10, steps=100):
    return get_lr(step, learning_rate=LR, min_lr=MIN_LR, warmup_steps=warmup, max_steps=steps)


def test_warmup_rises_linearly_to_the_peak():
    assert [lr(s) for s in range(10)] == pytest.approx([LR * (s + 1) / 10 for s in range(10)])
    assert lr(0) > 0  # the first step already trains


def test_cosine_decays_from_the_peak_to_min_lr():
    assert lr(10) == pytest.approx(LR)
    assert lr(55) == pytest.approx(MIN_LR + 0.5 * (LR - MIN_LR))
    assert lr(100) == pytest.approx(MIN_LR)
    assert lr(10_000) == MIN_LR


@given(warmup=st.integers(0, 50), steps=st.integers(1, 500), data=st.data())
def test_lr_stays_between_zero_and_the_peak_and_never_rises_after_warmup(warmup, steps, data):
    step = data.draw(st.integers(0, steps))
    value = lr(step, warmup, steps)
    assert 0 < value <= LR * (1 + 1e-12)
    if step >= warmup:
        assert lr(step + 1, warmup, steps) <= value + 1e-15
        assert value >= MIN_LR - 1e-15
    assert not math.isnan(value)
